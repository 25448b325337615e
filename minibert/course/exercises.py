"""Generate the exercise notebooks from the solutions, the single source.

Every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a code cell of ``solutions/NN_*.ipynb``
becomes ``raise NotImplementedError(...)`` naming the exercise, at the region's indentation. Outputs are
cleared, so learners see a fresh notebook. ``python -m minibert.course.exercises --check`` fails when ``exercises/`` is
out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_EXERCISE_NAME = re.compile(r"#\s*Exercise\s+([\w.]+)\s*[:.-]?\s*(.*)", re.IGNORECASE)


def strip_solutions(source: str, default_name: str) -> str:
    """Replace each solution region by a NotImplementedError; the name comes from a '# Exercise N: ...' line."""
    lines, out, inside = source.split("\n"), [], False
    name = default_name
    for line in lines:
        m = _EXERCISE_NAME.search(line)
        if m and not inside:
            name = f"Exercise {m[1]}" + (f": {m[2].strip()}" if m[2].strip() else "")
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN} in {default_name}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({name!r})")
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN} in {default_name}")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END} in {default_name}")
    return "\n".join(out)


def make_exercise(nb: dict, notebook_name: str) -> dict:
    nb = json.loads(json.dumps(nb))  # deep copy
    n = 0
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code":
            if BEGIN in src:
                n += 1
                src = strip_solutions(src, f"{notebook_name}, exercise {n}")
            cell["outputs"], cell["execution_count"] = [], None
        cell["source"] = src.splitlines(keepends=True)
        cell.get("metadata", {}).pop("execution", None)
    return nb


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
    args = parser.parse_args(argv)
    stale = generate(args.root, check=args.check)
    if args.check and stale:
        stale_list = ", ".join(stale)
        print(f"exercises/ is out of date for: {stale_list}\nrun: minibert exercises", file=sys.stderr)
        return 1
    print(("regenerated: " + ", ".join(stale)) if stale else "exercises/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
