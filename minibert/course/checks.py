"""Automatic feedback for the exercises: ``check("04.1", causal_mask)`` under an exercise, ``hint("04.1")`` on demand.

A check runs the learner's function and the reference on the same seeded cases (from ``minibert.course.chapters``)
and prints one verdict: right (exact, or within tolerance), wrong (naming the case, its inputs, the item and the
position that differ, or what the method got wrong), an error (with the line), or not implemented yet (told apart
from an answer that calls another exercise's function that is not written yet). Hints come in levels, only after
an attempt: each wrong verdict shows the next one. A concept question's check shows its explanation after a right
answer or a second wrong one.

Checks never raise, so a notebook runs top to bottom however far the learner has got, except under the test suite:
with ``MINIBERT_STRICT_CHECKS=pass`` a check that does not pass raises :class:`CheckFailed`, and with
``MINIBERT_STRICT_CHECKS=not-implemented`` one that does not say "not implemented" does. ``MINIBERT_CHECK_LOG``
names a file to which each verdict is appended as a line of JSON (``minibert grade`` reads it).
"""

from __future__ import annotations

import json
import os
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from . import chapters
from .compare import CLOSE, EXACT, WRONG, Outcome, compare, describe, short, worst
from .spec import Case, Exercise, Question, seeded_tensors

PASS, WRONG_ANSWER, ERROR = "pass", "wrong", "error"
NOT_IMPLEMENTED = "not implemented"
HELPER_NOT_IMPLEMENTED = "calls unimplemented helper"
STRICT_ENV, LOG_ENV = "MINIBERT_STRICT_CHECKS", "MINIBERT_CHECK_LOG"
ANSWER_SPOT = "Replace `# YOUR CODE HERE` and the `raise NotImplementedError()` under it with your code"

_PACKAGE = str(Path(__file__).resolve().parents[1])
_STDLIB = sysconfig.get_paths()["stdlib"]


class CheckFailed(AssertionError):
    """A check did not give the verdict the test suite expects (MINIBERT_STRICT_CHECKS)."""


@dataclass
class Verdict:
    id: str
    status: str  # PASS, WRONG_ANSWER, ERROR, NOT_IMPLEMENTED or HELPER_NOT_IMPLEMENTED
    message: str  # what the learner reads

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass
class _Progress:
    attempts: int = 0  # verdicts that judged an answer (not "not implemented")
    hints_shown: int = 0


_progress: dict[str, _Progress] = {}  # per id, for the life of the kernel


def check(item_id: str, answer: Any = None) -> None:
    """Check the answer to an exercise or question and print the verdict (and a hint when it is wrong)."""
    v = verdict(item_id, answer)
    print(v.message)
    _log(v)
    expected = os.environ.get(STRICT_ENV, "").strip().lower()
    if expected == "pass" and not v.passed:
        raise CheckFailed(f"{item_id} should pass here: {v.message}")
    if expected == "not-implemented" and v.status != NOT_IMPLEMENTED:
        raise CheckFailed(f"{item_id} should be 'not implemented' here: {v.message}")


def verdict(item_id: str, answer: Any = None, item: Exercise | Question | None = None) -> Verdict:
    """The verdict on an answer, with the hint or explanation it earns; updates the id's progress."""
    item = item or chapters.get(item_id)
    progress = _progress.setdefault(item.id, _Progress())
    if isinstance(item, Question):
        return _judge_question(item, answer, progress)
    status, text = _judge_exercise(item, answer)
    message = text
    if status in (WRONG_ANSWER, ERROR):
        progress.attempts += 1
        message += "\n" + _next_hint(item, progress)
    elif status == PASS:
        progress.attempts += 1
    return Verdict(item.id, status, message)


def hint(item_id: str) -> None:
    """Print the next hint of an exercise or question (after a first attempt: hints never come before one)."""
    item = chapters.get(item_id)
    progress = _progress.setdefault(item.id, _Progress())
    if progress.attempts == 0:
        print(f"💡 {item_id}: try it first, then run its check; a wrong answer's verdict comes with the first hint.")
        return
    print(_next_hint(item, progress))


def reset(item_id: str | None = None) -> None:
    """Forget the attempts and hints shown (of one id, or of all)."""
    if item_id is None:
        _progress.clear()
    else:
        _progress.pop(item_id, None)


def _next_hint(item: Exercise | Question, progress: _Progress) -> str:
    hints = list(item.hints)
    if progress.hints_shown >= len(hints):
        return f"   💡 No more hints for {item.id}. The last: {hints[-1]}"
    progress.hints_shown += 1
    n = progress.hints_shown
    more = f' (hint("{item.id}") or another try shows the next)' if n < len(hints) else " (the last one)"
    return f"   💡 Hint {n} of {len(hints)}{more}: {hints[n - 1]}"


# ---------------------------------------------------------------------------------------------------------------
# Exercises


def _title(ex: Exercise) -> str:
    return f"{ex.id} {ex.function}"


def _cases(ex: Exercise) -> list[Case]:
    return [c if isinstance(c, Case) else Case(tuple(c)) for c in ex.cases()]


def _case_words(ex: Exercise, i: int, n: int, case: Case) -> str:
    names = list(ex.args) or [f"input {j + 1}" for j in range(len(case.args))]
    inputs = [f"{name} {d}" for name, a in zip(names, case.args) if (d := describe(a))]
    inside = "; ".join(p for p in (", ".join(inputs), case.label) if p)
    return f"case {i + 1} of {n}" + (f" ({inside})" if inside else "")


def _judge_exercise(ex: Exercise, fn: Any) -> tuple[str, str]:
    title = _title(ex)
    if not callable(fn):
        return ERROR, f'❌ {title}: error: check needs your function, e.g. check("{ex.id}", {ex.function})'
    with torch.random.fork_rng(devices=[]), torch.set_grad_enabled(ex.grad):
        mine, theirs = _cases(ex), _cases(ex)  # built twice: an answer that changes its inputs changes only its own
        outcomes = []
        for i, (case, ref_case) in enumerate(zip(mine, theirs)):
            try:
                got = ex.run(fn, case.args)
            except NotImplementedError as e:
                return _not_implemented(ex, fn, e)
            except Exception as e:  # the learner's code failed: say where, keep the notebook going
                raised = f"your function raised {type(e).__name__}: {e}{_where_learner(e.__traceback__)}"
                return ERROR, f"❌ {title}: error on {_case_words(ex, i, len(mine), case)}:\n   {raised}"
            expected = ex.run(ex.reference, ref_case.args)
            outcome = _compare_result(ex, got, expected)
            if outcome.status == WRONG:
                where = _case_words(ex, i, len(mine), case)
                return WRONG_ANSWER, f"❌ {title}: wrong on {where}:\n   {outcome.detail}."
            outcomes.append(outcome)
        if ex.method is not None:
            for case in _cases(ex):
                problem = ex.method(fn, case.args)
                if problem:
                    return WRONG_ANSWER, f"❌ {title}: right result, wrong method:\n   {problem}"
    n = f"{len(mine)} case{'s' if len(mine) > 1 else ''}"
    best = worst(outcomes)
    if best.status == EXACT:
        return PASS, f"✅ {title}: right, an exact match on {n}."
    return PASS, f"✅ {title}: right on {n}, within floating-point tolerance ({best.detail})."


def _compare_result(ex: Exercise, got: Any, expected: Any):
    if ex.view is not None:
        try:
            got = ex.view(got)
        except (TypeError, AttributeError) as e:
            return _wrong(f"the result cannot be read: {e}")
        expected = ex.view(expected)
    if not ex.returns:
        return compare(got, expected, ex.atol, ex.rtol, "the result", ex.index, ex.dims_of(None))
    names = list(ex.returns)
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        shown = f"a {type(got).__name__} of {len(got)}" if isinstance(got, (tuple, list)) else short(got, 40)
        return _wrong(f"the function returned {shown}; it should return {len(names)} items: ({', '.join(names)})")
    outcomes = [
        compare(g, e, ex.atol, ex.rtol, f"`{name}`", ex.index, ex.dims_of(name))
        for name, g, e in zip(names, got, expected)
    ]
    wrong = [(name, o) for name, o in zip(names, outcomes) if o.status == WRONG]
    if not wrong:
        return worst(outcomes)
    first = wrong[0][1]
    right = [f"`{name}`" for name, o in zip(names, outcomes) if o.status != WRONG]
    others = [f"`{name}`" for name, _ in wrong[1:]]
    tail = (f"; {', '.join(others)} wrong too" if others else "") + (f"; {', '.join(right)} right" if right else "")
    return _wrong(first.detail + tail)


def _wrong(detail: str):
    return Outcome(WRONG, detail)


def _frames(tb: TracebackType | None) -> list:
    out = []
    while tb is not None:
        out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _is_learner_code(filename: str) -> bool:
    """Code the learner wrote: not the package, not a library, not the standard library."""
    if filename.startswith((_PACKAGE, _STDLIB)) or "site-packages" in filename or "dist-packages" in filename:
        return False
    return not filename.startswith("<frozen")


def _where_learner(tb: TracebackType | None) -> str:
    frames = [(f, n) for f, n in _frames(tb) if _is_learner_code(f.f_code.co_filename)]
    if not frames:
        return ""
    frame, line = frames[-1]
    text = traceback.FrameSummary(frame.f_code.co_filename, line, frame.f_code.co_name).line
    return f"\n   at line {line} of `{frame.f_code.co_name}`" + (f": `{text}`" if text else "")


def _not_implemented(ex: Exercise, fn: Callable, e: NotImplementedError) -> tuple[str, str]:
    """'Not implemented yet' when the checked function raised it; 'calls an unwritten helper' when another did."""
    title = _title(ex)
    frames = _frames(e.__traceback__)
    raiser = frames[-1][0].f_code if frames else None
    own = getattr(fn, "__code__", None)
    if raiser is None or raiser is own or not _is_learner_code(raiser.co_filename):
        return NOT_IMPLEMENTED, f"⏳ {title}: not implemented yet. {ANSWER_SPOT}, then run this check again."
    helper = raiser.co_name
    where = ""
    for frame, line in frames:
        if frame.f_code is own:
            text = traceback.FrameSummary(frame.f_code.co_filename, line, frame.f_code.co_name).line
            where = f" (line {line}" + (f": `{text}`)" if text else ")")
    chapter = ex.id.split(".")[0]
    siblings = chapters.items(chapter) if chapter in chapters.MODULES else []
    others = [i.id for i in siblings if getattr(i, "function", "") == helper and i.id != ex.id]
    which = f", exercise {others[0]}," if others else ""
    return HELPER_NOT_IMPLEMENTED, (f"⏳ {title}: not finished: it calls `{helper}`{which} which is not implemented "
                                    f"yet{where}. Write `{helper}` first (or do without it), then run this check "
                                    "again.")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Questions


def _judge_question(q: Question, answer: Any, progress: _Progress) -> Verdict:
    kind = f"one of {', '.join(repr(c) for c in q.choices)}" if q.choices else "a number"
    try:
        value = answer() if callable(answer) else answer
    except NotImplementedError:
        value = None
    except Exception as e:
        return Verdict(q.id, ERROR, f"❌ {q.id}: error: your answer raised {type(e).__name__}: {e}"
                       f"{_where_learner(e.__traceback__)}")  # fmt: skip
    if value is None:
        return Verdict(q.id, NOT_IMPLEMENTED, f"⏳ {q.id}: not answered yet. {ANSWER_SPOT}: `return` your answer "
                       f"({kind}), then run this check again.")  # fmt: skip
    right, taken = q.judge(value)
    progress.attempts += 1
    if right:
        return Verdict(q.id, PASS, f"✅ {q.id}: right ({taken}).\n   Why: {q.explanation}")
    wrong = f"❌ {q.id}: not right (your answer: {taken})."
    if progress.attempts >= 2 or progress.hints_shown >= len(q.hints):
        return Verdict(q.id, WRONG_ANSWER, f"{wrong}\n   The answer is {q.solution()}. Why: {q.explanation}")
    return Verdict(q.id, WRONG_ANSWER, wrong + "\n" + _next_hint(q, progress))


# ---------------------------------------------------------------------------------------------------------------
# The record that `minibert grade` reads


def _log(v: Verdict) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": v.id, "status": v.status, "message": v.message}, ensure_ascii=False) + "\n")


__all__ = ["CLOSE", "EXACT", "check", "hint", "reset", "seeded_tensors", "verdict"]
