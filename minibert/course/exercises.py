"""Generate the exercise notebooks from the solutions, the single source, as nbgrader would.

``solutions/NN_*.ipynb`` is in nbgrader's source format: each cell that holds a solution carries nbgrader's cell
metadata (``"solution": true``) and marks its solution region with ``### BEGIN SOLUTION`` / ``### END SOLUTION``.
Each region becomes nbgrader's stub, ``# YOUR CODE HERE`` then ``raise NotImplementedError()``, at the region's
indentation (a solution cell without a region becomes the stub entirely; markdown gets ``YOUR ANSWER HERE``), and
outputs are cleared: ``nbgrader generate_assignment`` makes the same student version. ``--check`` fails when
``exercises/`` is out of date; ``--mark`` adds the nbgrader metadata to solution cells that lack it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"  # nbgrader matches these anywhere in a line
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = ["YOUR ANSWER HERE"]
_CHECK_ID = re.compile(r"""\b(?:check|hint)\(\s*["']([\w.]+)["']""")


def strip_solutions(source: str, where: str = "a cell", stub: list[str] = CODE_STUB) -> str:
    """Replace each solution region by the stub, indented like its BEGIN line (nbgrader's ClearSolutions)."""
    out, inside = [], False
    for line in source.split("\n"):
        if BEGIN in line:
            if inside:
                raise ValueError(f"nested {BEGIN} in {where}")
            inside = True
            indent = re.match(r"\s*", line).group(0)
            out += [indent + s for s in stub]
        elif END in line:
            if not inside:
                raise ValueError(f"{END} without {BEGIN} in {where}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END} in {where}")
    return "\n".join(out)


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def is_solution_cell(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def make_exercise(nb: dict, notebook_name: str) -> dict:
    """The student version of a solution notebook: solution regions stubbed, outputs cleared."""
    nb = json.loads(json.dumps(nb))  # deep copy
    for i, cell in enumerate(nb["cells"]):
        src, where = _source(cell), f"{notebook_name}, cell {i}"
        has_region = BEGIN in src or END in src
        if has_region and not is_solution_cell(cell):
            raise ValueError(f"{where} has a solution region but no nbgrader solution metadata; run "
                             "python -m minibert.course.exercises --mark")  # fmt: skip
        stub = CODE_STUB if cell["cell_type"] == "code" else TEXT_STUB
        if has_region:
            src = strip_solutions(src, where, stub)
        elif is_solution_cell(cell):
            src = "\n".join(stub)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell["source"] = src.splitlines(keepends=True)
        cell.get("metadata", {}).pop("execution", None)
    return nb


def mark_solution_cells(nb: dict) -> int:
    """Give each cell with a solution region nbgrader's solution metadata, its grade_id named after the id that
    the next check cell checks ("answer_04_1"); returns how many cells were marked."""
    marked, cells = 0, nb["cells"]
    for i, cell in enumerate(cells):
        if BEGIN not in _source(cell) or is_solution_cell(cell):
            continue
        ids = [m for later in cells[i + 1 : i + 3] for m in _CHECK_ID.findall(_source(later))]
        grade_id = "answer_" + (ids[0] if ids else f"cell_{i}").replace(".", "_")
        cell.setdefault("metadata", {})["nbgrader"] = {
            "grade": False,
            "grade_id": grade_id,
            "locked": False,
            "schema_version": 3,
            "solution": True,
            "task": False,
        }
        marked += 1
    return marked


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def generate(root: Path, check: bool = False) -> list[str]:
    """Write (or, with check, compare) exercises/X.ipynb for every solutions/X.ipynb; returns stale names."""
    solutions, exercises = root / "solutions", root / "exercises"
    stale = []
    expected_names = set()
    for src in sorted(solutions.glob("*.ipynb")):
        expected_names.add(src.name)
        text = render(make_exercise(json.loads(src.read_text(encoding="utf-8")), src.stem))
        dst = exercises / src.name
        if dst.is_file() and dst.read_text(encoding="utf-8") == text:
            continue
        stale.append(src.name)
        if not check:
            exercises.mkdir(exist_ok=True)
            dst.write_text(text, encoding="utf-8")
    orphans = [p.name for p in exercises.glob("*.ipynb") if p.name not in expected_names]
    if check:
        stale += [f"{name} (no solution notebook)" for name in orphans]
    else:
        for name in orphans:
            (exercises / name).unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course folder (holds solutions/)")
    parser.add_argument("--check", action="store_true", help="fail if exercises/ is out of date; write nothing")
    parser.add_argument("--mark", action="store_true", help="add nbgrader metadata to solution cells that lack it")
    args = parser.parse_args(argv)
    if args.mark:
        for path in sorted((args.root / "solutions").glob("*.ipynb")):
            nb = json.loads(path.read_text(encoding="utf-8"))
            if mark_solution_cells(nb):
                path.write_text(render(nb), encoding="utf-8")
                print(f"marked the solution cells of {path.name}")
    stale = generate(args.root, check=args.check)
    if args.check and stale:
        stale_list = ", ".join(stale)
        print(f"exercises/ is out of date for: {stale_list}\nrun: minibert exercises", file=sys.stderr)
        return 1
    print(("regenerated: " + ", ".join(stale)) if stale else "exercises/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
