"""benchmarks/gpu_suite.py: its plan, budget, FLOP count, notebook bookkeeping, and a short rehearsal on the CPU."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minibert import EncoderForPreTraining, preset

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
gs = sys.modules["gpu_suite"] = importlib.util.module_from_spec(SPEC)  # dataclasses look their module up
SPEC.loader.exec_module(gs)


def test_the_plan_covers_every_chapter_and_solution_in_order():
    s = gs.settings_from_args([])
    assert s.stages == ["parity", "notebooks", "mfu", "outputs"]
    expected = [f"{d}/{p.name}" for d in ("notebooks", "solutions") for p in sorted((ROOT / d).glob("*.ipynb"))]
    assert s.notebooks == expected and len(expected) >= 20
    assert (s.profile, s.device, s.budget_s, s.jobs, s.mfu_preset) == ("full", "cuda", 540, 1, "bert-base")
    assert s.parity_timeout_s + s.notebook_timeout_s + s.mfu_timeout_s < s.budget_s  # a whole notebook fits
    plan = "\n".join(gs.plan_lines(s))
    for stage in s.stages:
        assert f"\n  {stage}" in plan

    r = gs.settings_from_args(["--rehearse"])
    assert (r.profile, r.device, r.budget_s, r.mfu_preset, r.notebooks) == ("smoke", "cpu", 180, "bert-tiny", expected)
    assert gs.child_env(r)["MINIBERT_DEVICE"] == "cpu" and gs.child_env(r)["MINIBERT_PROFILE"] == "smoke"

    picked = gs.settings_from_args(["--only", "mfu,parity", "--notebooks", "07_", "--budget-minutes", "5"])
    assert picked.stages == ["parity", "mfu"] and picked.budget_s == 300
    assert picked.notebooks == ["notebooks/07_pretraining.ipynb", "solutions/07_pretraining.ipynb"]
    with pytest.raises(SystemExit):
        gs.settings_from_args(["--only", "speed"])
    with pytest.raises(SystemExit):
        gs.settings_from_args(["--notebooks", "99_nothing"])
    with pytest.raises(SystemExit):
        gs.settings_from_args(["--mfu-shapes", "256by128"])


def test_budget_grants_what_is_left_after_later_stages_and_refuses_scraps():
    now = [0.0]
    budget = gs.Budget(100, clock=lambda: now[0])
    assert budget.grant(30) == 30
    now[0] = 60.0
    assert budget.grant(30, reserve=20) == 20  # 40 left, 20 of it kept for a later stage
    assert budget.grant(30, reserve=30) is None  # 10 s: not worth starting
    assert budget.grant(5, reserve=30) == 5  # an item that needs less than the minimum still starts
    now[0] = 101.0
    assert budget.grant(1) is None and budget.left() < 0


def test_peak_table_tells_the_h100s_apart():
    assert gs.peak_tflops("NVIDIA H100 PCIe") == (756, "bf16")
    assert gs.peak_tflops("NVIDIA H100 80GB HBM3") == (989, "bf16")
    assert gs.peak_tflops("NVIDIA H200") == (989, "bf16")
    assert gs.peak_tflops("NVIDIA GH200 480GB") == (989, "bf16")
    assert gs.peak_tflops("NVIDIA A100-SXM4-80GB") == (312, "bf16")
    assert gs.peak_tflops("NVIDIA L4") == (121, "bf16") and gs.peak_tflops("NVIDIA L40S") == (362, "bf16")
    assert gs.peak_tflops("Tesla T4") == (65, "fp16")
    assert gs.peak_tflops("Some Future GPU") is None


def test_flop_formula_for_bert_base_written_out():
    with torch.device("meta"):
        model = EncoderForPreTraining(preset("bert-base"))
    C, V, L, T = 768, 30522, 12, 128
    layers = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C)  # Wqkv, Wo, Wi, Wo: 84.9M
    head = C * C + V * C  # MLM transform and the (tied) decoder
    per_sequence = C * C + 2 * C  # pooler, next-sentence head
    masked = 19
    expected = 6 * layers * T + 12 * L * T * C * T + 6 * head * masked + 6 * per_sequence
    assert layers == 84_934_656
    assert gs.train_step_flops(model, 1, T, masked) == expected


def test_flop_formula_equals_torch_flop_counter_on_a_real_step():
    torch.manual_seed(0)
    config = preset("bert-mini", vocab_size=300, max_position_embeddings=64)
    model = EncoderForPreTraining(config)
    batch = next(gs.synthetic_stream(config.vocab_size, 3, 48))
    masked = int((batch["labels"] != -100).sum())
    counted = gs.counted_flops(model, batch, "fp32", "cpu")
    assert counted == pytest.approx(gs.train_step_flops(model, 3, 48, masked), rel=1e-9)


def test_synthetic_batches_are_full_and_masked_like_bert():
    stream = gs.synthetic_stream(1000, 4, 128)
    batch = next(stream)
    assert batch["input_ids"].shape == (4, 128) and bool(batch["attention_mask"].all())
    masked = batch["labels"] != -100
    assert masked.sum(1).tolist() == [19] * 4  # round(15% of 125 candidates), under BERT's cap of 20
    assert set(batch["input_ids"][:, 0].tolist()) == {2} and not bool(masked[:, 0].any())  # [CLS] never masked


def records(nb: str, cells: list[tuple[int, str, str | None]], events=("start", "end")) -> list[dict]:
    rows = [{"nb": nb, "event": "start", "timeout": 60.0}] if "start" in events else []
    for cell, outcome, reason in cells:
        rows.append({"nb": nb, "cell": cell, "when": "setup", "outcome": "passed", "seconds": 0.5})
        call = {"nb": nb, "cell": cell, "when": "call", "outcome": outcome, "seconds": 1.0 + cell}
        rows.append(call | ({"reason": reason} if reason else {}))
        rows.append({"nb": nb, "cell": cell, "when": "teardown", "outcome": "passed", "seconds": 0.0})
    return rows + [{"nb": nb, "event": e} for e in events if e not in ("start",)]


def test_notebook_rows_from_the_watch_records():
    nb = "notebooks/x.ipynb"
    ok = gs.notebook_row(nb, records(nb, [(0, "passed", None), (1, "passed", None)]), ended=True, killed=False)
    assert (ok["status"], ok["seconds"], ok["cells_passed"], ok["slowest"]) == (
        "pass",
        4.0,
        2,
        {"cell": 1, "seconds": 2.0},
    )
    differ = records(nb, [(0, "passed", None), (1, "failed", "outputs differ"), (2, "failed", "ZeroDivisionError")])
    row = gs.notebook_row(nb, differ, ended=True, killed=False)
    assert row["status"] == "fail" and row["note"] == "cell 1: outputs differ"
    assert gs.compare_counts([0, 1, 2, 5], row["cells"]) == (4, 1, 1, 2)  # 2 raised, 5 never ran: not compared
    slow = gs.notebook_row(nb, records(nb, [(0, "failed", "timeout")]), ended=True, killed=False)
    assert slow["status"] == "timeout" and slow["note"] == "over 60 s"
    assert gs.notebook_row(nb, [{"nb": nb, "event": "not run"}], ended=True, killed=False)["status"] == gs.NOT_RUN
    assert gs.notebook_row(nb, [], ended=False, killed=False)["status"] == "not reached"
    cut = records(nb, [(0, "passed", None)], events=("start",))
    assert gs.notebook_row(nb, cut, ended=False, killed=True)["status"] == "timeout"
    assert gs.notebook_row(nb, cut, ended=False, killed=False)["status"] == "error"


def test_failure_reasons_from_nbval_reports():
    assert gs.cell_failure_reason("Notebook cell execution failed\nCell outputs differ\n...") == "outputs differ"
    assert gs.cell_failure_reason("Timeout of 4 seconds exceeded executing cell") == "timeout"
    text = "Traceback ...\nFile x\nZeroDivisionError: division by zero\n"
    assert gs.cell_failure_reason(text) == "ZeroDivisionError: division by zero"


def notebook(cells: list[tuple[str, str | None]]) -> dict:
    """A notebook whose code cells have these sources and stored stdout (None: not run)."""
    out = []
    for n, (source, stored) in enumerate(cells):
        outputs = [] if stored is None else [{"output_type": "stream", "name": "stdout", "text": stored}]
        out.append(
            {"cell_type": "code", "execution_count": n + 1, "metadata": {}, "outputs": outputs, "source": source}
        )
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_the_watch_plugin_reports_a_differing_output_an_error_and_the_notebook_timeout(tmp_path):
    nb = tmp_path / "t.ipynb"
    nb.write_text(
        json.dumps(
            notebook(
                [
                    ("# NBVAL_CHECK_OUTPUT\nprint('same')", "same\n"),
                    ("print(2)", "1\n"),  # not checked: a different output is fine
                    ("# NBVAL_CHECK_OUTPUT\nprint('gpu')", "cpu\n"),
                    ("1 / 0", None),
                    ("import time\ntime.sleep(60)", None),
                    ("print('never')", None),
                ]
            )
        )
    )
    out = tmp_path / "records.jsonl"
    watch = {"records": str(out), "deadline": 1e12, "timeout": 10, "min_start": 1}  # the sleep ends it
    env = dict(os.environ, PYTHONPATH=str(ROOT / "benchmarks"), **{gs.WATCH_VAR: json.dumps(watch)})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            nb.name,
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "gpu_suite",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    row = gs.notebook_row("t.ipynb", rows, ended=True, killed=False)
    reasons = {c["cell"]: c.get("reason", c["outcome"]) for c in row["cells"]}
    assert reasons == {
        0: "passed",
        1: "passed",
        2: "outputs differ",
        3: "ZeroDivisionError: division by zero",
        4: "timeout",
        5: "skipped",
    }
    assert row["status"] == "timeout" and 5 < row["seconds"] < 60
    assert gs.checked_cells(nb) == [0, 2] == sorted(r["cell"] for r in rows if r.get("checked") and r["when"] == "call")
    assert gs.compare_counts(gs.checked_cells(nb), row["cells"]) == (2, 1, 1, 0)


def test_a_rehearsal_runs_a_notebook_and_timed_steps_then_resumes_without_rerunning(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu_suite.py"),
        "--rehearse",
        "--only",
        "notebooks,mfu,outputs",
        "--notebooks",
        "solutions/00_warmup",
        "--mfu-steps",
        "1",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    row = results["notebooks"]["solutions/00_warmup.ipynb"]
    assert row["status"] == "pass" and row["cells_passed"] == len(row["cells"]) >= 5
    (step,) = results["mfu"]["rows"]
    assert step["mfu"] is None and step["tokens_per_s"] > 0 and step["fused_adamw"]
    assert step["formula_vs_counter"] == pytest.approx(1.0)
    assert results["outputs"]["equal"] == results["outputs"]["checked"] == 2
    assert step["data_ms"] > 0 and "   n/a " in done.stdout and "== summary" in done.stdout

    again = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "earlier run" in again.stdout and "done in the earlier run" in again.stdout
