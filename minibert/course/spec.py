"""What the course knows about each exercise and concept question: its cases, its reference, its hints.

An :class:`Exercise` asks the learner for one function; its cases are rebuilt from fixed seeds on every check, and
its reference is the package's own function (or a small private one in ``minibert.course.chapters``). A
:class:`Question` asks about an idea; its answer is computed, never typed in. The notebooks hold neither: their
check cells name an id, ``check("04.1", causal_mask)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Case:
    """The inputs of one call, and a few words about what makes the case special (shown when it fails)."""

    args: tuple
    label: str = ""


@dataclass
class Exercise:
    """Write one function; it is run on every case beside the reference, and must match it."""

    id: str  # "04.1": chapter, then the exercise's number in the notebook
    function: str  # the name the notebook gives the learner's function
    cases: Callable[[], Sequence[tuple | Case]]  # rebuilt (and reseeded) for each run
    reference: Callable
    hints: Sequence[str]  # the idea first, the last close to code
    args: Sequence[str] = ()  # the names of a case's inputs, for verdicts
    returns: Sequence[str] = ()  # the names of the items of a returned tuple, for verdicts
    call: Callable | None = None  # how a function is run on a case: call(fn, *args); default fn(*args)
    method: Callable[[Callable, tuple], str | None] | None = None  # checks how the result is computed
    view: Callable[[Any], Any] | None = None  # what of a result is compared (e.g. a dataclass's fields)
    index: str = "position"  # what an index of a 1-D result is called: "position", "step", ...
    dims: Sequence[str] | dict[str, Sequence[str]] | None = None  # the dimensions' names, per returned item
    atol: float = 1e-5
    rtol: float = 1e-5
    grad: bool = False  # run with autograd on (off by default: nothing is trained)

    kind = "exercise"

    def run(self, fn: Callable, args: tuple) -> Any:
        return self.call(fn, *args) if self.call is not None else fn(*args)

    def dims_of(self, item: str | None) -> Sequence[str] | None:
        if isinstance(self.dims, dict):
            return self.dims.get(item or "")
        return self.dims


@dataclass
class Question:
    """A question about an idea, answered by a number (within a tolerance) or by the letter of a choice."""

    id: str  # "04.Q1"
    answer: Callable[[], float | str]  # computed by the package, so the numbers are the course's own
    hints: Sequence[str]
    explanation: str  # shown after a right answer, or after the second wrong one
    choices: dict[str, str] = field(default_factory=dict)  # letter -> choice; empty for a number
    rel_tol: float = 0.01
    abs_tol: float = 0.0
    function: str = ""  # the name of the function that returns the answer in the notebook

    kind = "question"

    def judge(self, value: Any) -> tuple[bool, str]:
        """(right, what the answer was taken to be): a number within tolerance, or the right letter."""
        expected = self.answer()
        if self.choices:
            letter = str(value).strip().strip("()").lower()
            if letter not in self.choices:
                options = ", ".join(f'"{c}"' for c in self.choices)
                return False, f"{value!r} is not one of the choices ({options})"
            return letter == str(expected), f'"{letter}"'
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False, f"{value!r} is not a number"
        right = math.isclose(number, float(expected), rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        return right, f"{number:g}"

    def solution(self) -> str:
        expected = self.answer()
        if self.choices:
            return f'"{expected}" ({self.choices[str(expected)]})'
        return f"{float(expected):.4g}"


def seeded_tensors(*shapes: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Random normal tensors made on the CPU from a fixed seed: the same on every machine."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype) for s in shapes]
