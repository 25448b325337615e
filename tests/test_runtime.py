"""Where the course runs: the size profile, the device, seeding and the cache folder."""

import pytest
import torch

from minibert import by_profile, get_device, profile, seed_everything
from minibert.runtime import cache_dir


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINIBERT_PROFILE", " Laptop ")
    assert profile() == "laptop" and by_profile(1, 2, 3) == 2
    monkeypatch.setenv("MINIBERT_PROFILE", "smoke")
    assert by_profile("a", "b", "c") == "a"
    monkeypatch.setenv("MINIBERT_PROFILE", "huge")
    with pytest.raises(ValueError, match="not a profile"):
        profile()
    monkeypatch.delenv("MINIBERT_PROFILE")
    assert profile() == ("full" if torch.cuda.is_available() else "laptop")


def test_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("MINIBERT_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.delenv("MINIBERT_DEVICE")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type in ("cuda", "mps", "cpu")


def test_seeding_repeats_every_generator():
    g = seed_everything(3)
    first = (torch.rand(2), torch.rand(2, generator=g))
    g = seed_everything(3)
    assert all(torch.equal(a, b) for a, b in zip(first, (torch.rand(2), torch.rand(2, generator=g))))


def test_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIBERT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("MINIBERT_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "minibert")


def test_a_chapter_prints_its_profile_first_and_its_run_time_last(capsys, monkeypatch):
    from minibert.runtime import end_chapter, start_chapter

    monkeypatch.setenv("MINIBERT_PROFILE", "laptop")
    start_chapter(model="bert-tiny")
    minutes = end_chapter()
    first, last = capsys.readouterr().out.splitlines()
    assert first.startswith("profile: laptop, device: ") and first.endswith("model: bert-tiny")
    assert last.startswith(f"run time: {minutes:.1f} min") and minutes >= 0


def test_stored_runs_get_one_progress_line(capsys, monkeypatch):
    from minibert.runtime import LineProgress, progress_bar

    monkeypatch.setenv("MINIBERT_PROGRESS", "line")
    with progress_bar(total=5, desc="pretraining", unit="step") as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(5):
            bar.update()
            bar.set_postfix({"loss": "1.5"}, refresh=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("pretraining: 5/5 step in ") and out.rstrip().endswith("loss=1.5")
    progress_bar(total=3, disable=True).close()
    assert capsys.readouterr().out == ""  # a disabled bar prints nothing
    monkeypatch.delenv("MINIBERT_PROGRESS")
    assert not isinstance(progress_bar(total=1, disable=True), LineProgress)  # otherwise tqdm's live bar
