"""The exercise machinery: friendly verdicts and the solutions -> exercises generator."""

import json

import nbformat
import torch

from minibert import checks, exercises


def softmax_ref(x):
    return torch.softmax(x, dim=-1)


def cases():
    return [(t,) for t in checks.seeded_tensors((3, 5), (2, 4, 7), seed=1)]


def test_exact_close_wrong_and_not_implemented(capsys):
    assert checks.check("softmax", softmax_ref, softmax_ref, cases)
    assert "✅ softmax: exact match on 2 case(s)." in capsys.readouterr().out

    def close(x):
        e = torch.exp(x - x.max(-1, keepdim=True).values)
        return e / e.sum(-1, keepdim=True) + 1e-7

    assert checks.check("softmax", close, softmax_ref, cases)
    assert "within tolerance" in capsys.readouterr().out

    assert not checks.check("softmax", torch.exp, softmax_ref, cases, hint="divide by the row sum")
    out = capsys.readouterr().out
    assert "❌ softmax: case 1 of 2 is wrong (max difference" in out and "Hint: divide by the row sum" in out

    def todo(x):
        raise NotImplementedError("Exercise 1: softmax")

    assert not checks.check("softmax", todo, softmax_ref, cases)
    assert "⏳ softmax: not implemented yet" in capsys.readouterr().out


def test_learner_errors_and_wrong_shapes_are_reported_not_raised(capsys):
    assert not checks.check("softmax", lambda x: x.reshape(-1), softmax_ref, cases)
    assert "shape" in capsys.readouterr().out
    assert not checks.check("softmax", lambda x: x @ x, softmax_ref, cases)
    out = capsys.readouterr().out
    assert "raised RuntimeError" in out and "line" in out


def test_compare_handles_ints_lists_and_dicts():
    assert checks.compare([1, 2, 3], [1, 2, 3])[0] == "exact"
    assert checks.compare(["a", "b"], ["a", "c"])[0] == "wrong"
    assert checks.compare({"x": torch.ones(2)}, {"x": torch.ones(2)})[0] == "exact"
    assert checks.compare({"x": 1}, {"y": 1})[0] == "wrong"
    assert checks.compare(torch.tensor([1, 2]), torch.tensor([1, 3])) == ("wrong", "1 of 2 values differ")


SOLUTION = '''# Exercise 2: the softmax
def softmax(x):
    """Rows sum to one."""
    ### BEGIN SOLUTION
    e = x.exp()
    return e / e.sum(-1, keepdim=True)
    ### END SOLUTION
'''


def test_strip_solutions_keeps_signature_and_names_the_exercise():
    out = exercises.strip_solutions(SOLUTION, "demo")
    assert "e = x.exp()" not in out
    assert "    raise NotImplementedError('Exercise 2: the softmax')" in out
    ns: dict = {}
    exec(out, ns)
    assert checks.check("softmax", ns["softmax"], softmax_ref, cases) is False


def test_generator_writes_and_detects_stale_exercises(tmp_path):
    (tmp_path / "solutions").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Demo"), nbformat.v4.new_code_cell(SOLUTION)]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nbformat.write(nb, tmp_path / "solutions" / "01_demo.ipynb")
    assert exercises.generate(tmp_path, check=True) == ["01_demo.ipynb"]
    assert exercises.generate(tmp_path) == ["01_demo.ipynb"]
    assert exercises.generate(tmp_path, check=True) == []
    made = json.loads((tmp_path / "exercises" / "01_demo.ipynb").read_text(encoding="utf-8"))
    code = made["cells"][1]
    assert code["outputs"] == [] and "NotImplementedError" in "".join(code["source"])
    (tmp_path / "exercises" / "99_orphan.ipynb").write_text("{}", encoding="utf-8")
    assert exercises.generate(tmp_path, check=True) == ["99_orphan.ipynb (no solution notebook)"]
