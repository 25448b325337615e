"""The exercise machinery: verdicts that name what is wrong, hints in levels, questions, strict mode, the log."""

import json

import pytest
import torch

from minibert.course import checks, compare
from minibert.course.chapters import items
from minibert.course.spec import Case, Exercise, Question, seeded_tensors


def softmax_cases():
    return [Case((t,)) for t in seeded_tensors((3, 5), (2, 4, 7), seed=1)]


SOFTMAX = Exercise(
    id="99.1",
    function="softmax",
    cases=softmax_cases,
    reference=lambda x: torch.softmax(x, dim=-1),
    args=("x",),
    hints=("the idea", "the method", "almost code"),
)
ATTENTION = items("04")[0]  # scaled_dot_product_attention: returns (output, probabilities)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    checks.reset()
    monkeypatch.delenv(checks.STRICT_ENV, raising=False)
    monkeypatch.delenv(checks.LOG_ENV, raising=False)
    yield
    checks.reset()


def judge(fn, item=SOFTMAX):
    return checks.verdict(item.id, fn, item=item)


def test_exact_close_wrong_and_not_implemented():
    v = judge(lambda x: torch.softmax(x, -1))
    assert v.passed and "right, an exact match on 2 cases" in v.message
    v = judge(lambda x: torch.softmax(x, -1) + 1e-7)
    assert v.passed and "within floating-point tolerance (largest difference 1." in v.message
    v = judge(torch.exp)
    assert v.status == checks.WRONG_ANSWER
    assert (
        "wrong on case 1 of 2 (x (3, 5)):\n   the result differs at 15 of 15 values, first and largest at [0, 0]"
        in v.message
    )

    def todo(x):
        # YOUR CODE HERE
        raise NotImplementedError()

    v = judge(todo)
    assert v.status == checks.NOT_IMPLEMENTED and "`# YOUR CODE HERE`" in v.message and "Hint" not in v.message


def test_a_wrong_item_is_named_with_its_position_and_values():
    def no_scale(q, k, v):
        probs = (q @ k.transpose(-2, -1)).softmax(-1)
        return probs @ v, probs

    v = judge(no_scale, ATTENTION)
    assert "`output` differs" in v.message and "`probabilities` wrong too" in v.message
    assert (
        "first at batch 0, head 0, query 0, feature 0 (got " in v.message and "the largest difference is" in v.message
    )

    def bad_output(q, k, v):
        probs = (q @ k.transpose(-2, -1) / q.size(-1) ** 0.5).softmax(-1)
        return probs @ v + 1, probs

    v = judge(bad_output, ATTENTION)
    assert "`output` differs" in v.message and "`probabilities` right" in v.message
    v = judge(lambda q, k, v: q, ATTENTION)
    assert "it should return 2 items: (output, probabilities)" in v.message


def test_dtype_shape_and_step_are_named():
    causal = items("04")[5]
    assert causal.function == "causal_mask"
    v = judge(lambda T: torch.ones(T, T).tril(), causal)
    assert "dtype torch.float32, expected torch.bool" in v.message and "T = 1" in v.message
    padding = items("04")[1]
    v = judge(lambda m: m.bool()[:, None, :, None], padding)
    assert "shape (2, 1, 5, 1), expected (2, 1, 1, 5)" in v.message
    schedule = items("07")[1]
    v = judge(lambda s, total, w: s / w if s < w else max(0.0, (total - s) / max(1.0, total - w)), schedule)
    assert "differs at 10 of 101 values, first and largest at step 0 (got 0, expected 0.09091)" in v.message


def test_hints_come_in_levels_after_an_attempt(capsys):
    progress = checks._progress.setdefault(SOFTMAX.id, checks._Progress())
    assert "Hint 1 of 3" in judge(torch.exp).message
    assert "Hint 2 of 3" in judge(torch.exp).message
    assert checks._next_hint(SOFTMAX, progress).endswith("almost code")
    assert "No more hints" in judge(torch.exp).message
    first = items("04")[0]
    checks.hint(first.id)
    assert "try it first" in capsys.readouterr().out
    checks.check(first.id, torch.exp)
    assert f"Hint 1 of {len(first.hints)}" in capsys.readouterr().out
    checks.hint(first.id)
    assert f"Hint 2 of {len(first.hints)}" in capsys.readouterr().out


def test_errors_and_unwritten_helpers_are_told_apart():
    def helper(x):
        raise NotImplementedError()

    def softmax(x):
        e = helper(x)  # an exercise not written yet
        return e / e.sum(-1, keepdim=True)

    v = judge(softmax)
    assert v.status == checks.HELPER_NOT_IMPLEMENTED
    assert "it calls `helper`" in v.message and "e = helper(x)" in v.message and "Hint" not in v.message

    def broken(x):
        return x @ x

    v = judge(broken)
    assert v.status == checks.ERROR and "raised RuntimeError" in v.message and "`return x @ x`" in v.message


def test_method_checks_see_how_the_result_was_made():
    mlm = items("07")[0]

    def everywhere(hidden, labels, head):  # the right loss, computed on every position
        logits = head(hidden)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    v = judge(everywhere, mlm)
    assert v.status == checks.WRONG_ANSWER and "wrong method" in v.message and "the head ran on 64 vectors" in v.message


def test_questions_explain_after_a_right_answer_or_a_second_wrong_one():
    q = items("04")[-2]
    assert isinstance(q, Question) and q.id == "04.Q1"
    v = checks.verdict(q.id, lambda: 64)
    assert v.status == checks.WRONG_ANSWER and "Hint 1" in v.message and "The answer is" not in v.message
    v = checks.verdict(q.id, 64)
    assert "The answer is 8" in v.message and "Why:" in v.message
    assert checks.verdict(q.id, lambda: 7.9).passed
    assert checks.verdict(q.id, None).status == checks.NOT_IMPLEMENTED
    choice = items("10")[-1]
    assert checks.verdict(choice.id, "(B)").passed
    assert "not one of the choices" in checks.verdict(choice.id, "d").message


def test_strict_mode_raises_and_the_log_records(monkeypatch, tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(checks.LOG_ENV, str(log))
    monkeypatch.setenv(checks.STRICT_ENV, "pass")
    causal = items("04")[5]
    checks.check(causal.id, lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    with pytest.raises(checks.CheckFailed, match="should pass"):
        checks.check(causal.id, lambda T: torch.ones(T, T).tril())
    monkeypatch.setenv(checks.STRICT_ENV, "not-implemented")
    with pytest.raises(checks.CheckFailed, match="should be 'not implemented'"):
        checks.check(causal.id, lambda T: torch.ones(T, T, dtype=torch.bool).tril())

    def todo(T):
        raise NotImplementedError()

    checks.check(causal.id, todo)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["status"] for e in entries] == ["pass", "wrong", "pass", "not implemented"]
    assert all(e["id"] == "04.6" for e in entries)


def test_compare_names_items_of_lists_and_dicts():
    assert compare([1, 2, 3], [1, 2, 3]).status == "exact"
    o = compare(["a", "b"], ["a", "c"])
    assert o.status == "wrong" and "item 1 of the result: got 'b', expected 'c'" in o.detail
    o = compare({"x": 1}, {"y": 1})
    assert "lacks 1 of the 1 expected keys, e.g. 'y'" in o.detail and "unexpected key" in o.detail
    o = compare({("h", "##u"): 1.0}, {("h", "##u"): 2.0})
    assert "the result[('h', '##u')]" in o.detail
    o = compare(torch.tensor([1, 2]), torch.tensor([1, 3]))
    assert "differs at 1 of 2 values, first at position 1 (got 2, expected 3)" in o.detail
    assert "return a Python number" in compare(torch.tensor(1.0), 1.0).detail
    assert compare([0.5, 1.0], [0.5, 1.0 + 1e-9]).status == "close"


def test_every_reference_passes_its_own_check_and_every_item_is_complete():
    chapters = [f"{n:02d}" for n in range(12)]
    for chapter in chapters:
        found = items(chapter)
        ids = [i.id for i in found]
        assert len(ids) == len(set(ids)) and all(i.startswith(chapter + ".") for i in ids)
        if chapter != "00":
            questions = [i for i in found if isinstance(i, Question)]
            assert 1 <= len(questions) <= 2, chapter
        for item in found:
            if isinstance(item, Exercise):
                assert len(item.hints) >= 3, item.id
                assert checks.verdict(item.id, item.reference, item=item).passed or item.method, item.id
            else:
                assert item.explanation and item.hints and item.function, item.id
                assert item.judge(item.answer())[0], item.id
