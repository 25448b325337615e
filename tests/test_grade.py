"""`minibert grade`: learners' notebooks run in fresh kernels, one verdict per exercise, a gradebook, exit 0."""

import csv
import json
import shutil
from pathlib import Path

from minibert import cli
from minibert.course import grade

ROOT = Path(__file__).resolve().parents[1]


def with_cell(path: Path, source: str, index: int) -> None:
    """Insert a code cell at ``index`` (a learner's edit)."""
    nb = json.loads(path.read_text())
    nb["cells"].insert(index, {"cell_type": "code", "execution_count": None, "id": f"edit{index}", "metadata": {},
                               "outputs": [], "source": source})  # fmt: skip
    path.write_text(json.dumps(nb, indent=1))


def test_grade_gives_each_learner_one_verdict_per_exercise_and_writes_a_gradebook(tmp_path, capsys):
    # learners hand in the warm-up: solved, wrong, untouched, and one whose notebook never ends
    for learner, source in [("alice", "solutions"), ("bob", "solutions"), ("carol", "exercises"), ("dan", "solutions")]:
        (tmp_path / learner).mkdir()
        shutil.copy(ROOT / source / "00_warmup.ipynb", tmp_path / learner)
    # bob forgets to divide by the row sum: his softmax is wrong; he also answers 0.5 to the question
    with_cell(tmp_path / "bob" / "00_warmup.ipynb", "def softmax(x):\n    return torch.exp(x)", 4)
    with_cell(tmp_path / "bob" / "00_warmup.ipynb", "equal_scores = lambda: 0.5", 11)
    with_cell(tmp_path / "dan" / "00_warmup.ipynb", "import time\ntime.sleep(120)", 2)
    gradebook = tmp_path / "grades.csv"

    status = cli.main(["grade", str(tmp_path / "alice"), str(tmp_path / "bob"), str(tmp_path / "carol"), "--csv",
                       str(gradebook), "--timeout", "120"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    lines = out.strip().splitlines()
    assert lines[-1] == "4 of 9 exercises pass", out
    assert lines[0].split() == ["notebook", "exercise", "verdict"]
    verdicts = {(r["notebook"].split("/")[-2], r["exercise"]): r["verdict"] for r in csv.DictReader(gradebook.open())}
    assert verdicts == {
        ("alice", "00.1"): "pass",
        ("alice", "00.2"): "pass",
        ("alice", "00.Q1"): "pass",
        ("bob", "00.1"): "wrong",
        ("bob", "00.2"): "pass",
        ("bob", "00.Q1"): "wrong",
        ("carol", "00.1"): "not implemented",
        ("carol", "00.2"): "not implemented",
        ("carol", "00.Q1"): "not implemented",
    }
    detail = next(
        r["detail"] for r in csv.DictReader(gradebook.open()) if r["notebook"].endswith("bob/00_warmup.ipynb")
    )
    assert detail.startswith("❌ 00.1 softmax: wrong on case 1 of 3")
    # the notebook that never ends is stopped at the time limit; grading itself worked: exit status 0
    assert cli.main(["grade", str(tmp_path / "dan"), "--timeout", "8"]) == 0
    out = capsys.readouterr().out
    assert out.count(" timeout") == 3 and out.strip().endswith("0 of 3 exercises pass"), out


def test_grade_refuses_bad_paths_before_running_anything(tmp_path, capsys):
    assert cli.main(["grade", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["grade", str(tmp_path)]) == 2
    assert "no notebooks" in capsys.readouterr().err
    assert cli.main(["grade", str(ROOT / "exercises"), "--timeout", "0"]) == 2
    assert "--timeout must be above 0" in capsys.readouterr().err


def test_expected_exercises_come_from_the_chapter_or_from_the_checks(tmp_path):
    nb = json.loads((ROOT / "exercises" / "04_attention.ipynb").read_text())
    ids = grade.expected_ids(Path("04_attention.ipynb"), nb)
    assert ids[:2] == ["04.1", "04.2"] and "04.Q2" in ids
    assert grade.expected_ids(Path("homework.ipynb"), nb)[:2] == ["04.1", "04.2"]
