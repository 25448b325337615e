"""The ``minibert`` command line: info, pretrain (killed, interrupted, resumed), fill-mask, export, and bad input:
every mistake gets a one-line message that names the argument or file, before any work starts, and loses nothing."""

import hashlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from minibert import cli, pretrain
from minibert.pretrain import trainer as training

TINY_RUN = ["--preset", "bert-tiny", "--vocab", "minilm", "--batch-size", "4", "--seq-len", "32",
            "--max-documents", "5", "--max-eval-batches", "1", "--threads", "1", "--quiet",
            "--dropout", "0.1"]  # fmt: skip
STEPS = ["--steps", "6", "--checkpoint-every", "2", "--eval-every", "3"]  # checkpoints at 2, 4, 6 (the last 2 kept)
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes and signals (Windows Ctrl-C is a console event)")


def history(folder):
    return json.loads((folder / "history.json").read_text())


def losses(folder):
    return [r["loss"] for r in history(folder)["steps"]]


def digest(folder):
    """Every file under ``folder`` with a hash of its bytes: equal digests mean nothing was touched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def copy_run(src, dst):
    """A cheap copy of a run folder (hard links): damage a file by replacing it, never by writing into it."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def damage(path, how="truncate"):
    data = path.read_bytes()
    path.unlink()  # a new file: the hard-linked original stays intact
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"garbage\n")


def error_of(capsys):
    """The one line the command printed to stderr."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A straight 6-step run: the reference every interrupted and resumed run must match exactly."""
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, *STEPS]) == 0
    run = history(out)
    assert len(run["steps"]) == 6 and [e["step"] for e in run["evals"]] == [3, 6]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004", "step-0000006"]
    return out


def test_info(capsys):
    assert cli.main(["info"]) == 0
    assert "minibert" in capsys.readouterr().out


def save_then_die(save_model):
    """``save_model`` that kills its process (no clean-up, as kill -9 does) once it wrote step 4's model."""

    def save(model, folder, tokenizer=None):
        save_model(model, folder, tokenizer)
        if "step-0000004" in str(folder):
            os.kill(os.getpid(), signal.SIGKILL) if hasattr(signal, "SIGKILL") else os._exit(137)

    return save


CHILD = f"""
import os, signal, sys
from minibert import cli
from minibert.pretrain import trainer as training
{inspect.getsource(save_then_die)}
training.save_model = save_then_die(training.save_model)
sys.exit(cli.main(sys.argv[1:]))
"""


def run_until_killed(args):
    """``minibert *args`` in another process that dies in the middle of writing its step-4 checkpoint.

    On Linux the process is a fork of this one: it starts at once, with torch already imported (a fresh interpreter
    takes seconds to import it on a busy machine); elsewhere it is a new interpreter.
    """
    if sys.platform.startswith("linux"):
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                training.save_model = save_then_die(training.save_model)
                cli.main(args)
            finally:
                os._exit(1)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the child process hung")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, *args], env=env, timeout=600).returncode


def test_pretrain_killed_while_saving_then_resumed_matches_an_uninterrupted_run(trained, tmp_path):
    out = tmp_path / "killed"
    assert run_until_killed(["pretrain", "--out", str(out), *TINY_RUN, *STEPS]) != 0
    assert not (out / "history.json").exists()
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-0000002", "step-0000004.tmp"]  # the half-written save is left as it was
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, *STEPS, "--resume"]) == 0
    assert losses(out) == losses(trained)  # bit for bit
    assert history(out)["evals"][-1]["mlm_loss"] == history(trained)["evals"][-1]["mlm_loss"]


@POSIX
def test_ctrl_c_saves_a_checkpoint_and_resume_falls_back_past_a_damaged_one(trained, tmp_path, capsys, monkeypatch):
    """Ctrl-C finishes the step, saves and exits 130; a damaged newest checkpoint is skipped with a note."""
    out = tmp_path / "interrupted"
    train_step, handler = training.Trainer.train_step, signal.getsignal(signal.SIGINT)

    def step_then_ctrl_c(self):
        row = train_step(self)
        if self.step == 3:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends
        return row

    monkeypatch.setattr(training.Trainer, "train_step", step_then_ctrl_c)
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, *STEPS, "--resume"]) == 130
    err = capsys.readouterr().err
    assert "holds no checkpoint yet; starting a new run" in err  # --resume with nothing to resume says so
    assert "interrupted at step 3 of 6" in err and "--resume" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is put back
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000003"]
    pretrain.read_checkpoint(out / "checkpoints" / "step-0000003")  # complete and readable

    damage(out / "checkpoints" / "step-0000003" / "rng-0.pt")  # the tester's case: it used to give a traceback
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, *STEPS, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "skipped the damaged checkpoint" in err and str(out / "checkpoints" / "step-0000003" / "rng-0.pt") in err
    assert "resumed from" in err and "step-0000002" in err
    assert losses(out) == losses(trained)


def test_a_second_ctrl_c_stops_at_once_and_says_where_the_checkpoint_is(tmp_path, capsys, monkeypatch):
    train_step = training.Trainer.train_step

    def step_then_interrupt(self):
        if self.step == 3:
            raise KeyboardInterrupt  # what a second Ctrl-C raises, in the middle of a step
        return train_step(self)

    monkeypatch.setattr(training.Trainer, "train_step", step_then_interrupt)
    assert cli.main(["pretrain", "--out", str(tmp_path), *TINY_RUN, *STEPS]) == 130
    err = error_of(capsys)
    assert err.endswith(f"the newest checkpoint is {tmp_path / 'checkpoints' / 'step-0000002'}: add --resume to the "
                        "same command to continue from it")  # fmt: skip


@pytest.mark.parametrize("name", ["model.safetensors", "trainer_state.pt", "rng-0.pt", "config.json"])
def test_resume_skips_a_checkpoint_with_any_damaged_file(trained, tmp_path, name):
    out = copy_run(trained, tmp_path / "run")
    damage(out / "checkpoints" / "step-0000006" / name)
    folder, files, skipped = pretrain.find_intact_checkpoint(out)
    assert folder.name == "step-0000004" and files["state"]["step"] == 4
    assert [f.name for f, _ in skipped] == ["step-0000006"] and name in skipped[0][1]


def test_resume_with_no_intact_checkpoint_is_refused_before_any_work(trained, tmp_path, capsys, monkeypatch):
    out = copy_run(trained, tmp_path / "run")
    damage(out / "checkpoints" / "step-0000006" / "trainer_state.pt", how="garbage")
    (out / "checkpoints" / "step-0000004" / "model.safetensors").unlink()
    before = digest(out)
    monkeypatch.setattr(cli, "_tokenizer_for", lambda *a: pytest.fail("work started"))
    assert cli.main(["pretrain", "--out", str(out), *TINY_RUN, *STEPS, "--resume"]) == 2
    err = error_of(capsys)
    assert err.startswith(f"minibert pretrain: error: no intact checkpoint in {out / 'checkpoints'}")
    assert str(out / "checkpoints" / "step-0000006" / "trainer_state.pt") in err
    assert "step-0000004 has no model.safetensors" in err
    assert "weights_only" not in err
    assert digest(out) == before


def test_fill_mask_prints_the_top_tokens(trained, capsys):
    assert cli.main(["fill-mask", str(trained), "the capital of [MASK] is [MASK].", "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[MASK] 1:") and lines[0].count("(") == 3
    assert cli.main(["fill-mask", str(trained), "[MASK]", "--top-k", "1"]) == 0  # nothing but the mask
    assert capsys.readouterr().out.startswith("[MASK] 1: ")


def test_fill_mask_refuses_a_mask_the_model_cannot_see(trained, capsys):
    text = "word " * 600 + "[MASK]."
    assert cli.main(["fill-mask", str(trained), text]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "minibert fill-mask: error: the [MASK] at token 601 (of 604) is past the model's 512 positions; shorten the "
        "text so that every [MASK] is within its first 510 tokens"
    )
    assert cli.main(["fill-mask", str(trained), "[MASK] " + "word " * 600, "--top-k", "2"]) == 0  # cut after it
    captured = capsys.readouterr()
    assert "note: the text has 603 tokens; the model reads its first 512" in captured.err
    assert captured.out.startswith("[MASK] 1: ") and captured.out.count("(") == 2


@pytest.mark.parametrize(
    "top_k, message",
    [
        ("0", "--top-k must be at least 1 (got 0)"),
        ("-1", "--top-k must be at least 1 (got -1)"),
        ("50000", "--top-k 50000 is more than the model's vocabulary (30522 tokens); use at most 30522"),
    ],
)
def test_fill_mask_top_k_out_of_range(trained, capsys, top_k, message):
    assert cli.main(["fill-mask", str(trained), "a [MASK].", "--top-k", top_k]) == 2
    assert error_of(capsys) == f"minibert fill-mask: error: {message}"


def test_fill_mask_other_mistakes(trained, tmp_path, capsys):
    assert cli.main(["fill-mask", str(trained), "no mask in this sentence"]) == 2
    assert "put at least one [MASK]" in error_of(capsys)
    assert cli.main(["fill-mask", str(trained), "the [mask] is"]) == 2
    assert "write [MASK] in capitals" in error_of(capsys)
    assert cli.main(["fill-mask", str(tmp_path / "nothing-here"), "a [MASK]."]) == 2
    assert "does not exist" in error_of(capsys)
    assert cli.main(["fill-mask", str(trained / "checkpoints"), "a [MASK]."]) == 2
    assert "not a minibert checkpoint; pass its parent (the run folder)" in error_of(capsys)
    run = copy_run(trained, tmp_path / "run")
    config = run / "checkpoints" / "step-0000006" / "config.json"
    damage(config)
    assert cli.main(["fill-mask", str(run), "a [MASK]."]) == 2
    err = error_of(capsys)
    assert f"{config} is damaged (not valid JSON" in err
    assert err.endswith(f"an older checkpoint may be intact: pass {run / 'checkpoints' / 'step-0000004'}")


def test_export_writes_a_transformers_folder(trained, tmp_path, capsys):
    from transformers import BertForPreTraining

    assert cli.main(["export", str(trained), str(tmp_path / "hf")]) == 0
    assert "fill-mask" in capsys.readouterr().out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 30522
    assert (tmp_path / "hf" / "vocab.txt").is_file() and (tmp_path / "hf" / "tokenizer_config.json").is_file()
    assert not list(tmp_path.glob(".hf.tmp*"))  # written under a temporary name, then renamed
    BertForPreTraining.from_pretrained(str(tmp_path / "hf"))


def test_export_never_writes_into_its_source(trained, tmp_path, capsys):
    before = digest(trained)
    newest = trained / "checkpoints" / "step-0000006"
    for source, out, message in [
        (newest, newest, f"{newest} is the checkpoint being exported: exporting into it would overwrite it"),
        (trained, newest, f"{newest} is the checkpoint being exported"),
        (trained, trained, f"{trained} holds the checkpoint being exported ({newest})"),
        (newest, newest / "hf", f"{newest / 'hf'} is inside the checkpoint being exported"),
    ]:
        assert cli.main(["export", str(source), str(out), "--force"]) == 2
        assert error_of(capsys).startswith(f"minibert export: error: {message}")
    assert digest(trained) == before
    assert cli.main(["pretrain", "--out", str(trained), *TINY_RUN, *STEPS, "--resume"]) == 0  # still resumable
    assert "has already finished (step 6 of 6)" in capsys.readouterr().out
    assert digest(trained) == before


def test_export_into_a_folder_that_holds_files_needs_force(trained, tmp_path, capsys):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli.main(["export", str(trained), str(out)]) == 2
    assert error_of(capsys) == (f"minibert export: error: {out} is not empty (notes.txt); choose a new folder, or "
                                "pass --force to write into it")  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "a-file").write_text("x")
    assert cli.main(["export", str(trained), str(tmp_path / "a-file")]) == 2
    assert "a-file is a file" in error_of(capsys)
    assert cli.main(["export", str(trained), str(out), "--force"]) == 0
    assert {"notes.txt", "config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in out.iterdir()}
    assert (out / "notes.txt").read_text() == "mine"


BAD_OPTIONS = [
    (["--steps", "0"], "--steps must be at least 1 (got 0)"),
    (["--steps=-2"], "--steps must be at least 1 (got -2)"),
    (["--minutes", "0"], "--minutes must be above 0 (got 0.0)"),
    (["--minutes", "nan"], "--minutes must be above 0 (got nan)"),
    (["--lr", "nan"], "--lr must be above 0 (got nan)"),
    (["--lr=-1e-3"], "--lr must be above 0 (got -0.001)"),
    (["--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
    (
        ["--micro-batch-size", "3"],
        "--micro-batch-size 3 does not divide the 4 sequences each process gets per step; use one of 1, 2, 4",
    ),
    (["--micro-batch-size", "0"], "--micro-batch-size must be at least 1 (got 0)"),
    (["--seq-len", "600"], "--seq-len 600 is longer than bert-tiny's 512 positions"),
    (["--seq-len", "4"], "--seq-len must be at least 8 (got 4): [CLS] and [SEP] leave too little room for text"),
    (["--mask-prob", "1"], "--mask-prob must be between 0 and 1, e.g. 0.15 (got 1.0)"),
    (["--mask-prob", "0"], "--mask-prob must be between 0 and 1, e.g. 0.15 (got 0.0)"),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1, e.g. 0.1 (got 1.0)"),
    (["--warmup=-1"], "--warmup must be 0 or more: a fraction of the steps, or a number of steps (got -1.0)"),
    (["--threads", "0"], "--threads must be at least 1 (got 0)"),
    (
        ["--max-documents", "1"],
        "--max-documents must be at least 2 (got 1): next-sentence prediction needs a "
        "second article (or pass --no-nsp)",
    ),
    (["--max-eval-batches", "0"], "--max-eval-batches must be at least 1 (got 0)"),
    (["--decay", "0"], "--decay must be a share of the steps above 0 and at most 1, e.g. 0.2 (got 0.0)"),
    (["--max-predictions", "0"], "--max-predictions must be at least 1 (got 0)"),
    (["--dupe-factor", "0"], "--dupe-factor must be at least 1 (got 0)"),
    (["--eval-every=-1"], "--eval-every must be 0 (only at the end) or more (got -1)"),
    (["--checkpoint-every=-5"], "--checkpoint-every must be 0 (only at the end) or more (got -5)"),
    (["--seed=-1"], "--seed must be between 0 and 2**32 - 1 (got -1)"),
    (["--vocab", "big"], "--vocab must be 'minilm' or a vocabulary size such as 8192 (got 'big')"),
    (["--preset", "nope"], "--preset 'nope' is not a preset; choose one of bert-base, "),
    (
        ["--corpus", "bg", "--max-documents", "9"],
        "--corpus bg has 1 training article(s); next-sentence prediction needs 2 or more: pass --no-nsp",
    ),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_bad_options_are_refused_before_any_work(tmp_path, capsys, monkeypatch, options, message):
    monkeypatch.setattr(cli, "_tokenizer_for", lambda *a: pytest.fail("work started before the options were checked"))
    budget = [] if {"--steps", "--minutes"} & {o.split("=")[0] for o in options} else ["--steps", "2"]
    assert cli.main(["pretrain", "--out", str(tmp_path / "out"), *TINY_RUN, *budget, *options]) == 2
    assert error_of(capsys).startswith(f"minibert pretrain: error: {message}")
    assert not (tmp_path / "out").exists()


ONE_PHASE = [o for o in TINY_RUN if o not in ("--batch-size", "4", "--seq-len", "32")]
BAD_PHASES = [
    ("32:128", "--phases '32:128': each phase is LENGTH:BATCH:SHARE"),
    ("32:4:0.5,64:4:0.4", "--phases '32:4:0.5,64:4:0.4': the shares add up to 0.9; make them add up to 1"),
    ("32:4:0.5,600:4:0.5", "--phases: sequence length 600 is longer than bert-tiny's 512 positions"),
    ("32:0:1", "--phases: batch size 0 must be at least 1"),
]


@pytest.mark.parametrize("phases, message", BAD_PHASES, ids=[p for p, _ in BAD_PHASES])
def test_bad_phases_are_refused_before_any_work(tmp_path, capsys, monkeypatch, phases, message):
    monkeypatch.setattr(cli, "_tokenizer_for", lambda *a: pytest.fail("work started before the options were checked"))
    assert cli.main(["pretrain", "--out", str(tmp_path / "out"), *ONE_PHASE, "--steps", "2", "--phases", phases]) == 2
    assert error_of(capsys).startswith(f"minibert pretrain: error: {message}")
    assert cli.main(["pretrain", "--out", str(tmp_path / "out"), *TINY_RUN, "--steps", "2", "--phases",
                     "32:4:1"]) == 2  # fmt: skip
    assert error_of(capsys) == "minibert pretrain: error: give either --phases or --seq-len/--batch-size, not both"


def test_the_defaults_are_chapter_07s_recipe():
    """`minibert pretrain` with no options trains as chapter 07 does (minibert.pretrain.COURSE_RECIPE)."""
    recipe = pretrain.COURSE_RECIPE
    args = cli.build_parser().parse_args(["pretrain", "--out", "x"])
    assert cli._phases_of(args) == [tuple(p) for p in recipe.phases]
    assert (args.preset, int(args.vocab), args.lr, args.warmup, args.decay) == (
        recipe.preset, recipe.vocab_size, recipe.lr, recipe.warmup, recipe.decay)  # fmt: skip
    assert (args.dropout, args.mask_prob, args.whole_word, args.dupe_factor) == (
        recipe.dropout, recipe.mask_prob, recipe.whole_word, recipe.dupe_factor)  # fmt: skip


def test_a_run_in_phases(tmp_path):
    out = tmp_path / "phases"
    assert cli.main(["pretrain", "--out", str(out), *ONE_PHASE, "--steps", "4", "--phases", "32:4:0.5,64:2:0.5",
                     "--decay", "0.5", "--checkpoint-every", "0"]) == 0  # fmt: skip
    steps = history(out)["steps"]
    assert len(steps) == 4 and max(r["tokens"] for r in steps[:2]) <= 4 * 32 and steps[-1]["lr"] > 0


def test_out_and_resume_mistakes_lose_nothing(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_tokenizer_for", lambda *a: pytest.fail("work started before the options were checked"))
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep me")
    assert cli.main(["pretrain", "--out", str(a_file), *TINY_RUN, *STEPS]) == 2  # used to fail after training
    assert error_of(capsys) == (f"minibert pretrain: error: --out {a_file} is a file; give a folder (it will hold "
                                "checkpoints/ and history.json)")  # fmt: skip
    assert a_file.read_text() == "keep me"
    assert cli.main(["pretrain", "--out", str(a_file / "sub"), *TINY_RUN, *STEPS]) == 2
    assert f"--out {a_file / 'sub'} cannot be written" in error_of(capsys)

    before = digest(trained)
    assert cli.main(["pretrain", "--out", str(trained), *TINY_RUN, *STEPS]) == 2  # a second run would overwrite it
    assert error_of(capsys) == (f"minibert pretrain: error: --out {trained} already holds a run (checkpoints up to "
                                "step-0000006); pass --resume to continue it, or choose a new folder")  # fmt: skip
    assert cli.main(["pretrain", "--out", str(trained), *TINY_RUN, *STEPS, "--resume", "--batch-size", "8"]) == 2
    assert error_of(capsys) == (f"minibert pretrain: error: --resume: the run in {trained} was started with "
                                "--batch-size 4 (now 8); resume with the options it started with")  # fmt: skip
    assert cli.main(["pretrain", "--out", str(trained), *TINY_RUN, "--steps", "9", "--resume"]) == 2
    assert "--steps 6 (now 9)" in error_of(capsys)
    assert cli.main(["pretrain", "--out", str(trained), *TINY_RUN, *STEPS, "--resume"]) == 0
    assert capsys.readouterr().out.strip() == (f"the run in {trained} has already finished (step 6 of 6); nothing "
                                               "to train: start a new run in another --out")  # fmt: skip
    assert digest(trained) == before


@POSIX
def test_files_get_the_usual_permissions(trained, tmp_path):
    """0644 files and 0755 folders under the usual umask, as transformers writes them: a shared checkpoint reads."""
    assert cli.main(["export", str(trained), str(tmp_path / "hf")]) == 0
    umask = os.umask(0o022)
    os.umask(umask)
    written = [*trained.rglob("*"), tmp_path / "hf", *(tmp_path / "hf").iterdir()]  # not pytest's own 0700 folder
    assert len(written) > 15
    for path in written:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o777 if path.is_dir() else 0o666) & ~umask, path
