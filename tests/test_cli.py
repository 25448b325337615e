"""The ``minibert`` command line: info, pretrain (killed and resumed), fill-mask, export."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from minibert import cli

TINY_RUN = ["--preset", "bert-tiny", "--vocab", "minilm", "--batch-size", "4", "--seq-len", "32",
            "--max-documents", "5", "--max-eval-batches", "1", "--threads", "1", "--quiet",
            "--dropout", "0.1"]  # fmt: skip


def history(folder):
    return json.loads((folder / "history.json").read_text())


def test_info(capsys):
    assert cli.main(["info"]) == 0
    assert "minibert" in capsys.readouterr().out


def test_pretrain_killed_then_resumed_matches_an_uninterrupted_run(tmp_path):
    steps = ["--steps", "12", "--checkpoint-every", "4", "--eval-every", "6"]
    assert cli.main(["pretrain", "--out", str(tmp_path / "straight"), *TINY_RUN, *steps]) == 0
    straight = history(tmp_path / "straight")
    assert len(straight["steps"]) == 12 and [e["step"] for e in straight["evals"]] == [6, 12]

    out = tmp_path / "killed"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "minibert.cli", "pretrain", "--out", str(out), *TINY_RUN, *steps]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "step-0000004").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no clean-up: whatever was being written is left half-done
    proc.wait()
    assert not (out / "history.json").exists(), "the run finished before it could be killed"
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, *steps, "--resume"]) == 0
    resumed = history(out)
    assert [r["loss"] for r in resumed["steps"]] == [r["loss"] for r in straight["steps"]]
    assert resumed["evals"][-1]["mlm_loss"] == straight["evals"][-1]["mlm_loss"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, "--steps", "3"]) == 0
    return out


def test_fill_mask_prints_the_top_tokens(trained, capsys):
    assert cli.main(["fill-mask", str(trained), "the capital of [MASK] is [MASK].", "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[MASK] 1:") and lines[0].count("(") == 3


def test_export_writes_a_transformers_folder(trained, tmp_path, capsys):
    from transformers import BertForPreTraining

    assert cli.main(["export", str(trained), str(tmp_path / "hf")]) == 0
    assert "fill-mask" in capsys.readouterr().out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 30522
    assert (tmp_path / "hf" / "vocab.txt").is_file() and (tmp_path / "hf" / "tokenizer_config.json").is_file()
    BertForPreTraining.from_pretrained(str(tmp_path / "hf"))


def test_bad_input_gets_a_clear_message(trained, tmp_path, capsys):
    assert cli.main(["fill-mask", str(trained), "no mask in this sentence"]) == 2
    assert "[MASK]" in capsys.readouterr().err
    assert cli.main(["fill-mask", str(tmp_path / "nothing-here"), "a [MASK]."]) == 2
    assert "not a minibert checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--out", str(tmp_path), "--steps", "3", "--minutes", "1"])  # one budget, not both
