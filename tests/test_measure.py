"""The course's measurements: timing, memory, threads, fresh processes and smoothing."""

from __future__ import annotations

import math
import sys
import textwrap
import time

import pytest
import torch

from minibert import course


def busy(seconds: float) -> None:
    """Spin on the CPU (unlike sleep, this uses CPU time)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_best_of_is_never_below_the_sleep_and_warms_up_first():
    calls = []

    def nap():
        calls.append(time.perf_counter())
        time.sleep(0.02)

    t = course.best_of(nap, repeats=3, warmup=2)
    assert 0.02 <= t < 0.5
    assert len(calls) == 5  # two warm-ups, three timed


def test_best_of_passes_arguments_and_takes_the_fastest_run():
    delays = iter([0.0, 0.2, 0.01, 0.15])  # the first is the warm-up
    t = course.best_of(lambda scale: time.sleep(next(delays) * scale), 1.0, repeats=3)
    assert 0.01 <= t < 0.15


def test_timed_returns_the_result_and_both_clocks():
    result, t = course.timed(lambda a, b=0: a + b, 2, b=3)
    assert result == 5 and isinstance(t, course.Timing)
    _, asleep = course.timed(time.sleep, 0.05)
    assert asleep.wall >= 0.05 and asleep.cpu < asleep.wall / 2  # sleeping takes wall time, not CPU time
    _, working = course.timed(busy, 0.03)
    assert working.cpu >= 0.03


def test_timings_keep_every_run_and_give_best_and_median():
    runs = course.timings(time.sleep, 0.005, repeats=4, warmup=0)
    assert len(runs) == 4 and all(r.wall >= 0.005 for r in runs)
    fixed = course.Timings([course.Timing(3.0, 1.0), course.Timing(1.0, 3.0), course.Timing(2.0, 2.0)])
    assert fixed.best() == 1.0 and fixed.best("cpu") == 1.0 and fixed.median() == 2.0
    assert fixed.seconds("cpu") == [1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="'wall' or 'cpu'"):
        fixed.best("gpu")
    with pytest.raises(ValueError, match="at least one run"):
        course.timings(time.sleep, 0, repeats=0)


def test_timings_run_until_the_cpu_budget_is_spent():
    runs = course.timings(busy, 0.01, repeats=2, warmup=0, min_cpu_seconds=0.05, max_repeats=20)
    assert sum(runs.seconds("cpu")) >= 0.05 and 2 < len(runs) <= 20
    capped = course.timings(busy, 0.01, repeats=2, warmup=0, min_cpu_seconds=10.0, max_repeats=4)
    assert len(capped) == 4


def test_interleaved_takes_turns():
    order = []
    runs = course.interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=2, warmup=1)
    assert order == ["a", "b"] * 3
    assert set(runs) == {"a", "b"} and all(len(r) == 2 for r in runs.values())


def test_steady_clock():
    assert course.steady_clock(1) == "cpu" and course.steady_clock(2) == "wall"


def test_num_threads_sets_and_restores():
    before = torch.get_num_threads()
    with course.num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), course.num_threads(1):
        raise KeyError("restored on errors too")
    assert torch.get_num_threads() == before


def test_peak_memory_on_the_cpu_counts_a_known_tensor_once():
    a, b = torch.randn(300, 400), torch.randn(400, 500)
    # matmul calls mm inside: the (300, 500) result is allocated once and must be counted once
    assert course.peak_memory(torch.matmul, a, b) == 300 * 500 * 4
    # a temporary freed inside the call still counts toward the peak
    peak = course.peak_memory(lambda: (torch.ones(1000, 1000) * 2).sum())
    assert 2 * 1000 * 1000 * 4 <= peak < 3 * 1000 * 1000 * 4
    held = torch.ones(2000, 1000)  # memory held before the call is not counted
    assert course.peak_memory(lambda: held.sum()) < 1000
    assert math.isnan(course.peak_memory(lambda: None, device="meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_memory_on_a_gpu_counts_a_known_tensor():
    a, b = torch.randn(1024, 512, device="cuda"), torch.randn(512, 2048, device="cuda")
    assert course.peak_memory(torch.matmul, a, b, device="cuda") >= 1024 * 2048 * 4
    assert course.best_of(torch.matmul, a, b) > 0


def test_peak_memory_on_the_cpu_keeps_profiler_logs_quiet(capfd):
    course.peak_memory(lambda: torch.ones(10))
    out, err = capfd.readouterr()
    assert "profiler" not in out + err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_resident_sees_a_large_allocation():
    size = 200 * 2**20

    def allocate():
        x = torch.ones(size // 4)  # written to, so its pages are resident
        return float(x[-1])

    value, mem = course.peak_resident(allocate)
    assert value == 1.0 and mem.peak >= mem.added
    if mem.exact:
        assert size * 0.9 <= mem.added < size * 2


def test_fresh_process_returns_what_the_script_reports(tmp_path, capsys):
    course.report({"seconds": [0.5, 0.25]})
    assert capsys.readouterr().out == '{"seconds": [0.5, 0.25]}\n'  # one JSON line, the child's side
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent("""
        import json, os, sys
        print("noise before the result")
        print(json.dumps({"args": sys.argv[1:], "threads": os.environ.get("OMP_NUM_THREADS")}))
        """)
    )
    assert course.fresh_process(script, "a", 2, threads=1) == {"args": ["a", "2"], "threads": "1"}
    script.write_text("import sys; sys.exit('this went wrong')")
    with pytest.raises(RuntimeError, match="this went wrong"):
        course.fresh_process(script)


def test_smooth_is_a_trailing_running_mean():
    assert course.smooth([1.0, 3.0, 5.0, 7.0, 9.0], 3) == [1.0, 2.0, 3.0, 5.0, 7.0]
    assert course.smooth([4.0, 2.0], 1) == [4.0, 2.0]
    assert course.smooth([1.0, 2.0, 6.0], 10) == [1.0, 1.5, 3.0]
    assert course.smooth([], 5) == []
    with pytest.raises(ValueError, match="at least one"):
        course.smooth([1.0], 0)
