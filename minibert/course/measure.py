"""How the course and its benchmarks measure: time, memory, thread count, fresh processes, smoothed curves.

One definition of each measurement, so that a figure in a notebook and a figure in a benchmark mean the same thing.

- time: ``timings`` runs a function after a warm-up and keeps each run's wall-clock and CPU seconds; ``best_of`` is
  the fastest run, the one least disturbed by other programs (what ``timeit`` reports). A benchmark that compares
  peers runs them ``interleaved`` so machine noise hits all alike. With one thread, CPU time is what the wall clock
  would show on an idle machine and hardly moves when other programs compete for the cores (``steady_clock``);
- memory: ``peak_memory`` is the most bytes a call held at once on top of what was already allocated (the CUDA
  allocator's statistics on a GPU, PyTorch's profiler on the CPU); ``peak_resident`` is what a call added to the
  whole process's peak resident memory (Linux), for benchmarks that run one model per ``fresh_process``;
- ``num_threads`` sets torch's CPU threads for a block; ``smooth`` is the running mean a training curve is drawn with.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile


def synchronize() -> None:
    """Wait for queued GPU work, so that a clock read afterwards includes it (a no-op where no GPU is in use)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        torch.mps.synchronize()


@dataclass(frozen=True)
class Timing:
    """Seconds of one call: on the wall clock, and of CPU time used by this process (all its threads)."""

    wall: float
    cpu: float


class Timings(list):
    """The runs of one measurement (each a ``Timing``), with their best and median on either clock."""

    def seconds(self, clock: str = "wall") -> list[float]:
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock={clock!r}: use 'wall' or 'cpu'")
        return [getattr(t, clock) for t in self]

    def best(self, clock: str = "wall") -> float:
        """The fastest run: the least disturbed by other programs."""
        return min(self.seconds(clock))

    def median(self, clock: str = "wall") -> float:
        return statistics.median(self.seconds(clock))


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, Timing]:
    """(fn(*args, **kwargs), its Timing); queued GPU work is waited for on both sides."""
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    synchronize()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def timings(
    fn: Callable,
    *args,
    repeats: int = 3,
    warmup: int = 1,
    min_cpu_seconds: float = 0.0,
    max_repeats: int = 50,
) -> Timings:
    """Time ``repeats`` calls of fn(*args) after ``warmup`` untimed ones (first-call costs: allocations, kernels).

    With ``min_cpu_seconds``, calls go on until their CPU time adds up to that much (``max_repeats`` at most):
    a fast call is timed more often.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats}, warmup={warmup}: time at least one run after zero or more warm-ups")
    for _ in range(warmup):
        fn(*args)
    runs = Timings()
    while len(runs) < repeats or (sum(runs.seconds("cpu")) < min_cpu_seconds and len(runs) < max_repeats):
        runs.append(timed(fn, *args)[1])
    return runs


def best_of(fn: Callable, *args, repeats: int = 3, warmup: int = 1) -> float:
    """Wall-clock seconds of fn(*args): the fastest of ``repeats`` runs after ``warmup`` untimed ones."""
    return timings(fn, *args, repeats=repeats, warmup=warmup).best()


def interleaved(runners: dict[Any, Callable[[], Any]], repeats: int = 3, warmup: int = 0) -> dict[Any, Timings]:
    """Time peers in turns (a, b, c, a, b, c, ...) so that the machine's load hits all of them alike."""
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    runs = {name: Timings() for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            runs[name].append(timed(fn)[1])
    return runs


def steady_clock(threads: int) -> str:
    """The clock to compare on: 'cpu' with one thread (it is the idle machine's wall clock and barely moves when
    other programs compete for the cores), 'wall' with more (CPU time then adds up the threads' work)."""
    return "cpu" if threads == 1 else "wall"


def load_average() -> str:
    """The machine's load, to print beside timings: '1.3 (on 2 CPUs)'."""
    return f"{os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)"


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run a block on ``n`` CPU threads (one thread gives the figures other programs disturb least)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler writes log lines there on every start and stop."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _profiled_peak(fn: Callable, *args) -> int:
    """Peak bytes the CPU allocator held during fn(*args) beyond what it held before, from PyTorch's profiler.

    Each operator's own allocations (``self_cpu_memory_usage``, children excluded so nothing counts twice) are
    added when it starts if it allocated, and when it ends if it freed.
    """
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(*args)
    changes = []
    for e in prof.events():
        if e.self_cpu_memory_usage:
            at = e.time_range.start if e.self_cpu_memory_usage > 0 else e.time_range.end
            changes.append((at, e.self_cpu_memory_usage))
    held = peak = 0
    for _, change in sorted(changes, key=lambda c: c[0]):
        held += change
        peak = max(peak, held)
    return peak


def peak_memory(fn: Callable, *args, device: torch.device | str = "cpu") -> float:
    """Peak bytes allocated by tensors while fn(*args) runs, beyond what was already allocated.

    On a CUDA device, the allocator's statistics; on the CPU, PyTorch's profiler (it sees tensors only, not the
    interpreter's own memory). NaN on other devices, which offer neither.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn(*args)
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    if device.type == "cpu":
        return float(_profiled_peak(fn, *args))
    return math.nan


@dataclass(frozen=True)
class Resident:
    """Resident memory of the process around one call, in bytes."""

    added: int  # peak resident memory during the call minus resident memory before it: what the call itself took
    peak: int  # the whole process's peak (libraries, weights and the call)
    exact: bool  # False where the peak could not be reset: then it is the process's peak since it started


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS: resident now, VmHWM: peak resident)."""
    status = Path("/proc/self/status")
    if not status.exists():
        raise RuntimeError("peak_resident reads /proc/self/status, which only Linux has")
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the system, so the baseline is what the process really holds."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_resident(fn: Callable, *args) -> tuple[Any, Resident]:
    """(fn(*args), the resident memory it added at its peak): all memory, the allocator's and the libraries'.

    Linux's peak (VmHWM) is reset just before the call by writing 5 to /proc/self/clear_refs; where that is not
    allowed, the peak is ``getrusage``'s ru_maxrss, which counts from the start of the process: run such a
    measurement first, in a fresh process.
    """
    _release_freed_memory()
    before = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        exact = True
    except OSError:
        exact = False
    result = fn(*args)
    peak = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result, Resident(added=peak - before, peak=peak, exact=exact)


def report(value: Any) -> None:
    """Print a measurement for the parent process of ``fresh_process`` (one JSON line)."""
    print(json.dumps(value), flush=True)


def fresh_process(script: str | Path, *args: Any, threads: int | None = None) -> Any:
    """Run ``python script *args`` in a new process and return the value it passed to ``report``.

    A fresh process holds only what it measures: no allocator state, cache or thread pool left over from another
    model. ``threads`` sets OMP_NUM_THREADS, which torch starts with.
    """
    cmd = [sys.executable, str(script), *map(str, args)]
    env = dict(os.environ) if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = res.stdout.strip().splitlines()
    if res.returncode or not lines:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed (exit code {res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(lines[-1])


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Running mean over the last ``window`` values (fewer at the start): a noisy training curve made readable."""
    if window < 1:
        raise ValueError(f"window={window}: average over at least one value")
    return [sum(values[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(values))]
