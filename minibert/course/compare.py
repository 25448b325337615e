"""Compare a learner's result with the reference's and say, in words, what differs and where.

A verdict names the item (a returned tensor, a dict key, a list element), then the first thing wrong with it: its
type, its dtype, its shape, or the position of the largest difference with both values. Tensors must match in
dtype as well as values: a float mask where a boolean one is asked for is wrong, even with the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

EXACT, CLOSE, WRONG = "exact", "close", "wrong"


@dataclasses.dataclass
class Outcome:
    """How a result compares: exact, close (within tolerance) or wrong, with what differs in words."""

    status: str
    detail: str = ""
    largest: float = 0.0  # the largest absolute difference of floats (0 when exact)


def short(x: Any, n: int = 60) -> str:
    """repr(x), cut to n characters."""
    if isinstance(x, torch.Tensor) and x.numel() > 12:
        return f"a tensor of shape {tuple(x.shape)}"
    s = repr(x.tolist() if isinstance(x, torch.Tensor) else x)
    return s if len(s) <= n else s[: n - 3] + "..."


def describe(value: Any) -> str:
    """A few words for an input: a tensor's shape (or its values when small), a number, a short list."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 12 and value.dtype in (torch.bool, torch.int64, torch.int32):
            return f"= {value.tolist()}"
        return str(tuple(value.shape))
    if isinstance(value, np.ndarray):
        return str(value.shape)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return f"= {short(value, 40)}"
    if isinstance(value, nn.Module):
        return f"= a {type(value).__name__}"
    if isinstance(value, dict):
        return f"(a dict of {len(value)})"
    if isinstance(value, (list, tuple)):
        s = short(list(value), 40)
        return f"= {s}" if not s.endswith("...") else f"(a list of {len(value)})"
    return ""  # generators, tokenizers, functions: nothing useful to say


def where(index: tuple[int, ...], dims: Sequence[str] | None, name: str = "position") -> str:
    """'query 2, key 3' with dimension names, 'step 10' for a 1-D result, else '[0, 1, 2]'."""
    if dims and len(dims) == len(index):
        return ", ".join(f"{d} {i}" for d, i in zip(dims, index))
    if len(index) == 1:
        return f"{name} {index[0]}"
    return "[" + ", ".join(map(str, index)) + "]"


def _number(x: Any) -> float | int | bool:
    return x.item() if hasattr(x, "item") else x


def _fmt(x: Any) -> str:
    x = _number(x)
    return f"{x:.4g}" if isinstance(x, float) else repr(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool)


def _numeric_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_number(v) or isinstance(v, bool) for v in x)


def compare(
    got: Any,
    expected: Any,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    what: str = "the result",
    index: str = "position",
    dims: Sequence[str] | None = None,
) -> Outcome:
    """Compare ``got`` with ``expected``: tensors, arrays, numbers, strings, lists, tuples, dicts, dataclasses."""
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(got) is not type(expected):
            return Outcome(WRONG, f"{what} is {_kind(got)}, expected {_kind(expected)}")
        fields = [f.name for f in dataclasses.fields(expected)]
        return worst([compare(getattr(got, f), getattr(expected, f), atol, rtol, f"`{f}`", index) for f in fields])
    if isinstance(expected, dict):
        return _compare_dicts(got, expected, atol, rtol, what, index)
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        return _compare_arrays(got, expected, atol, rtol, what, index, dims)
    if _is_number(expected) or isinstance(expected, bool):
        if isinstance(got, torch.Tensor):
            return Outcome(WRONG, f"{what} is a tensor; return a Python number ({what}.item() or float(...))")
        if not (_is_number(got) or isinstance(got, bool)):
            return Outcome(WRONG, f"{what} is {_kind(got)}, expected a number ({_fmt(expected)})")
        return _compare_arrays(np.asarray(got), np.asarray(expected), atol, rtol, what, index, dims)
    if _numeric_list(expected) and _numeric_list(got) and len(got) == len(expected):
        return _compare_arrays(np.asarray(got), np.asarray(expected), atol, rtol, what, index, dims)
    if isinstance(expected, (list, tuple)):
        return _compare_sequences(got, expected, atol, rtol, what, index)
    if got == expected:
        return Outcome(EXACT)
    return Outcome(WRONG, f"{what}: got {short(got)}, expected {short(expected)}")


def worst(outcomes: list[Outcome]) -> Outcome:
    """The first wrong outcome, else the closest-to-wrong one (close with the largest difference), else exact."""
    for o in outcomes:
        if o.status == WRONG:
            return o
    close = [o for o in outcomes if o.status == CLOSE]
    return max(close, key=lambda o: o.largest) if close else Outcome(EXACT)


def _kind(x: Any) -> str:
    if x is None:
        return "None"
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__}"


def _compare_dicts(got: Any, expected: dict, atol: float, rtol: float, what: str, index: str) -> Outcome:
    if not isinstance(got, dict):
        return Outcome(WRONG, f"{what} is {_kind(got)}, expected a dict of {len(expected)}")
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} of the {len(expected)} expected keys, e.g. {short(missing[0], 40)}")
        if extra:
            parts.append(f"has {len(extra)} unexpected key(s), e.g. {short(extra[0], 40)}")
        return Outcome(WRONG, f"{what} " + " and ".join(parts))
    return worst([compare(got[k], v, atol, rtol, f"{what}[{short(k, 40)}]", index) for k, v in expected.items()])


def _compare_sequences(got: Any, expected: Sequence, atol: float, rtol: float, what: str, index: str) -> Outcome:
    if not isinstance(got, (list, tuple)):
        return Outcome(WRONG, f"{what} is {_kind(got)}, expected {_kind(expected)}")
    if len(got) != len(expected):
        return Outcome(WRONG, f"{what} has {len(got)} items, expected {len(expected)}: got {short(got)}, "
                       f"expected {short(expected)}")  # fmt: skip
    outcomes = []
    for i, (g, e) in enumerate(zip(got, expected)):
        o = compare(g, e, atol, rtol, f"item {i} of {what}" if index == "position" else f"{what} at {index} {i}")
        if o.status == WRONG:
            return o
        outcomes.append(o)
    return worst(outcomes)


def _compare_arrays(
    got: Any, expected: Any, atol: float, rtol: float, what: str, index: str, dims: Sequence[str] | None
) -> Outcome:
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return Outcome(WRONG, f"{what} is {_kind(got)}, expected a torch tensor of shape {tuple(expected.shape)}")
        if got.dtype != expected.dtype:
            why = " (a mask is boolean: True where allowed)" if expected.dtype == torch.bool else ""
            return Outcome(WRONG, f"{what} has dtype {got.dtype}, expected {expected.dtype}{why}")
        g, e = got.detach().cpu(), expected.detach().cpu()
        g = g.double().numpy() if g.is_floating_point() else g.numpy()
        e = e.double().numpy() if e.is_floating_point() else e.numpy()
    else:
        if isinstance(got, torch.Tensor) and isinstance(expected, np.ndarray):
            return Outcome(WRONG, f"{what} is a torch tensor, expected a NumPy array (.numpy() converts)")
        if _numeric_list(got):
            got = np.asarray(got)
        if not isinstance(got, np.ndarray):
            return Outcome(WRONG, f"{what} is {_kind(got)}, expected an array of shape {tuple(expected.shape)}")
        g, e = got, np.asarray(expected)
    if g.shape != e.shape:
        return Outcome(WRONG, f"{what} has shape {tuple(g.shape)}, expected {tuple(e.shape)}")
    if e.dtype.kind in "fc" or g.dtype.kind in "fc":
        g64, e64 = g.astype(np.float64), e.astype(np.float64)
        if np.array_equal(g64, e64, equal_nan=True):
            return Outcome(EXACT)
        nan_mismatch = np.isnan(g64) != np.isnan(e64)
        if nan_mismatch.any():
            at = tuple(int(i) for i in np.argwhere(nan_mismatch)[0])
            return Outcome(WRONG, f"{what} at {where(at, dims, index)}: got {_fmt(g64[at])}, expected "
                           f"{_fmt(e64[at])}", float("inf"))  # fmt: skip
        diff = np.where(np.isnan(e64), 0.0, np.abs(g64 - e64))
        at = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.ndim else ()
        largest = float(diff[at]) if diff.ndim else float(diff)
        if np.allclose(g64, e64, atol=atol, rtol=rtol, equal_nan=True):
            return Outcome(CLOSE, f"largest difference {largest:.1e}", largest)
        if not at:
            return Outcome(WRONG, f"{what}: got {_fmt(g64)}, expected {_fmt(e64)}", largest)
        bad = ~np.isclose(g64, e64, atol=atol, rtol=rtol, equal_nan=True)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        values = f"got {_fmt(g64[first])}, expected {_fmt(e64[first])}"
        which = "first and largest" if first == at else "first"
        detail = (
            f"{what} differs at {int(bad.sum())} of {e.size} values, {which} at {where(first, dims, index)} ({values})"
        )
        if first != at:
            detail += f"; the largest difference is {largest:.3g}, at {where(at, dims, index)}"
        return Outcome(WRONG, detail, largest)
    if np.array_equal(g, e):
        return Outcome(EXACT)
    if not e.shape:
        return Outcome(WRONG, f"{what}: got {_fmt(g)}, expected {_fmt(e)}")
    differ = g != e
    at = tuple(int(i) for i in np.argwhere(differ)[0])
    return Outcome(WRONG, f"{what} differs at {int(differ.sum())} of {e.size} values, first at "
                   f"{where(at, dims, index)} (got {_fmt(g[at])}, expected {_fmt(e[at])})")  # fmt: skip
