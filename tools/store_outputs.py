"""Run notebooks top to bottom in one profile and store their outputs in place: how the course's outputs are made.

    python tools/store_outputs.py                                    # every chapter and solution, laptop profile
    python tools/store_outputs.py notebooks/07_pretraining.ipynb     # one chapter
    python tools/store_outputs.py --profile full                     # on a GPU

Each notebook runs in a fresh kernel (the one ``ipykernel`` installs) with ``MINIBERT_PROFILE`` set and progress bars
printing one line each (``MINIBERT_PROGRESS=line``). Afterwards the README's minutes column takes each chapter's
printed run time, and ``exercises/`` is generated again from ``solutions/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def run(path: Path, profile: str, cell_timeout: int) -> float:
    """Execute ``path`` in place; returns its wall-clock minutes."""
    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(MINIBERT_PROFILE=profile, MINIBERT_PROGRESS="line")
    start = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    tidy(nb)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return (time.perf_counter() - start) / 60


def tidy(nb) -> None:
    """What a reader should see: one stream output where a cell printed several times in a row (as JupyterLab shows
    it), no saved widget state (a live widget needs a running kernel anyway), and the kernelspec ipykernel installs."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            last = merged[-1] if merged else None
            same_stream = last is not None and out["output_type"] == last["output_type"] == "stream"
            if same_stream and out["name"] == last["name"]:
                last["text"] += out["text"]
            else:
                merged.append(out)
        if cell.cell_type == "code":
            cell.outputs = merged
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = KERNELSPEC


def stored_run_time(path: Path) -> float | None:
    """The minutes a chapter printed in its last code cell (``end_chapter()``), or None."""
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    text = "".join("".join(o.get("text", "")) for o in cells[-1].get("outputs", [])) if cells else ""
    m = re.search(r"run time: ([\d.]+) min", text)
    return float(m[1]) if m else None


def update_readme_minutes(readme: Path = ROOT / "README.md") -> list[str]:
    """Write each chapter's stored run time (rounded, at least 1) into the README's chapter map."""
    lines, changed = readme.read_text(encoding="utf-8").splitlines(keepends=True), []
    for i, line in enumerate(lines):
        m = re.search(r"\(notebooks/(\d\d_\w+\.ipynb)\)", line)
        if not m:
            continue
        minutes = stored_run_time(ROOT / "notebooks" / m[1])
        if minutes is None:
            continue
        head, _, _ = line.rstrip("\n").rstrip(" |").rpartition("|")
        new = f"{head}| {max(1, round(minutes))} |\n"
        if new != line:
            lines[i] = new
            changed.append(m[1])
    readme.write_text("".join(lines), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb and solutions/*.ipynb")
    parser.add_argument("--profile", default="laptop", choices=["smoke", "laptop", "full"])
    parser.add_argument("--cell-timeout", type=int, default=3600, help="seconds one cell may run")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "solutions").glob("*.ipynb")
    )
    for path in paths:
        print(f"{path}: running in the {args.profile} profile ...", flush=True)
        minutes = run(path.resolve(), args.profile, args.cell_timeout)
        print(f"{path}: {minutes:.1f} min", flush=True)
    print("README minutes updated for:", ", ".join(update_readme_minutes()) or "none")
    from minibert.course import exercises

    print("exercises regenerated:", ", ".join(exercises.generate(ROOT)) or "none were stale")
    return 0


if __name__ == "__main__":
    sys.exit(main())
