"""Friendly automatic feedback for the exercises.

Each check runs the learner's function and the reference on the same seeded inputs and prints one verdict:
exact, close (with the largest difference), wrong (with the difference and a hint), or not implemented yet.
Checks never raise, so an exercise notebook runs top to bottom however far the learner has got.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

NOT_IMPLEMENTED = "not implemented yet"


def _as_array(x: Any) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (int, float, bool, np.number)):
        return np.asarray(x)
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (int, float, bool, np.number)) for v in x):
        return np.asarray(x)
    return None


def compare(got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-5) -> tuple[str, str]:
    """('exact' | 'close' | 'wrong', detail) for two results: tensors, arrays, numbers or nested lists/dicts."""
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            return "wrong", f"expected a dict with keys {sorted(expected)}, got {keys}"
        verdicts = [compare(got[k], expected[k], atol, rtol) for k in expected]
        return _worst(verdicts)
    e, g = _as_array(expected), _as_array(got)
    if e is not None:
        if g is None:
            return "wrong", f"expected an array-like result, got {type(got).__name__}"
        if g.shape != e.shape:
            return "wrong", f"shape {tuple(g.shape)}, expected {tuple(e.shape)}"
        if e.dtype.kind in "fc" or g.dtype.kind in "fc":
            g64, e64 = g.astype(np.float64), e.astype(np.float64)
            if np.array_equal(g64, e64, equal_nan=True):
                return "exact", ""
            diff = float(np.nanmax(np.abs(g64 - e64))) if g64.size else 0.0
            if np.allclose(g64, e64, atol=atol, rtol=rtol, equal_nan=True):
                return "close", f"max difference {diff:.2e}"
            return "wrong", f"max difference {diff:.3g}"
        if np.array_equal(g, e):
            return "exact", ""
        n_bad = int((g != e).sum())
        return "wrong", f"{n_bad} of {e.size} values differ"
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return "wrong", f"expected a sequence of {len(expected)} items, got {_short(got)}"
        return _worst([compare(a, b, atol, rtol) for a, b in zip(got, expected)])
    return ("exact", "") if got == expected else ("wrong", f"got {_short(got)}, expected {_short(expected)}")


def _worst(verdicts: list[tuple[str, str]]) -> tuple[str, str]:
    order = {"exact": 0, "close": 1, "wrong": 2}
    return max(verdicts, key=lambda v: order[v[0]]) if verdicts else ("exact", "")


def _short(x: Any, n: int = 80) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def check(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Iterable[tuple] | Callable[[], Iterable[tuple]],
    hint: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    verbose: bool = True,
) -> bool:
    """Run ``fn(*case)`` and ``reference(*case)`` on every case; print one verdict; True when all pass.

    ``cases`` may be a function returning the cases, so inputs are rebuilt (and reseeded) for each run.
    """
    cases = list(cases() if callable(cases) else cases)
    worst = ("exact", "")
    for i, case in enumerate(cases):
        try:
            got = fn(*case)
        except NotImplementedError:
            return _say(verbose, f"⏳ {name}: {NOT_IMPLEMENTED}. Fill in the code between the markers, then re-run.")
        except Exception as e:  # the learner's code failed: show where, keep the notebook going
            tb = traceback.extract_tb(e.__traceback__)[-1]
            return _say(
                verbose,
                f"❌ {name}: raised {type(e).__name__}: {e} (line {tb.lineno}: {tb.line!r}) on case {i + 1}."
                + (f"\n   Hint: {hint}" if hint else ""),
                False,
            )
        verdict = compare(got, reference(*case), atol, rtol)
        if verdict[0] == "wrong":
            return _say(
                verbose,
                f"❌ {name}: case {i + 1} of {len(cases)} is wrong ({verdict[1]})."
                + (f"\n   Hint: {hint}" if hint else ""),
                False,
            )
        worst = _worst([worst, verdict])
    if worst[0] == "exact":
        return _say(verbose, f"✅ {name}: exact match on {len(cases)} case(s).", True)
    return _say(verbose, f"✅ {name}: matches within tolerance on {len(cases)} case(s) ({worst[1]}).", True)


def _say(verbose: bool, message: str, ok: bool = False) -> bool:
    if verbose:
        print(message)
    return ok


def seeded_tensors(*shapes: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Random normal tensors made on the CPU from a fixed seed: the same on every machine."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype) for s in shapes]
