"""``minibert grade PATH...``: run learners' exercise notebooks and give one verdict per exercise and question.

Each notebook runs top to bottom in a fresh kernel (this Python), in the ``smoke`` profile, from its own folder,
within a time limit; its cells may fail (the learner's code), the run goes on. Every ``check(...)`` appends its
verdict to a log (``MINIBERT_CHECK_LOG``), which is read back: the verdicts are the checks' own, however the
notebook prints them. An exercise of the notebook's chapter whose check did not run is "not run" (or "timeout").
The table lists notebook, exercise and verdict; the last line says how many pass; ``--csv`` writes a gradebook.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write
from . import chapters
from .checks import LOG_ENV, PASS, STRICT_ENV

NOT_RUN, TIMEOUT = "not run", "timeout"
_CHECK_ID = re.compile(r"""\bcheck\(\s*["']([\w.]+)["']""")


@dataclass
class Row:
    notebook: str
    exercise: str
    verdict: str
    detail: str = ""


def find_notebooks(paths: list[str | Path]) -> list[Path]:
    """The notebooks named, and those inside the folders named (recursively, checkpoints left out)."""
    found = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist; give notebooks or folders of notebooks")
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.suffix == ".ipynb":
            found.append(p)
        else:
            raise ValueError(f"{p} is not a notebook (.ipynb) or a folder")
    if not found:
        raise ValueError(f"no notebooks (.ipynb) in {', '.join(map(str, paths))}")
    return found


def expected_ids(path: Path, nb: dict) -> list[str]:
    """The exercises a notebook should check: its chapter's (from the name, 04_*.ipynb), else those it checks."""
    chapter = path.name[:2]
    if chapter in chapters.MODULES and path.name[2:3] == "_":
        return [item.id for item in chapters.items(chapter)]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb.get("cells", [])]
    return list(dict.fromkeys(i for s in sources for i in _CHECK_ID.findall(s)))


def run_notebook(path: Path, timeout: float) -> tuple[dict[str, dict], str]:
    """Execute a notebook; returns its checks' verdicts (id -> the last verdict logged) and what stopped it, if any."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "checks.jsonl"
        env = {k: v for k, v in os.environ.items() if k != STRICT_ENV}
        env.update({"MINIBERT_PROFILE": "smoke", LOG_ENV: str(log), "MPLBACKEND": "Agg"})
        # "python3" is this interpreter: jupyter_client starts the kernel spec's "python" as sys.executable
        client = NotebookClient(nb, kernel_name="python3", allow_errors=True, record_timing=False,
                                resources={"metadata": {"path": str(path.parent.resolve())}})  # fmt: skip
        stopped = ""
        deadline = time.monotonic() + timeout
        try:
            with client.setup_kernel(env=env, stderr=subprocess.DEVNULL):  # the kernel's own warnings are noise here
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        stopped = TIMEOUT
                        break
                    client.timeout = max(1, int(remaining))
                    client.execute_cell(cell, index)
        except CellTimeoutError:
            stopped = TIMEOUT
        except DeadKernelError:
            stopped = "the kernel died"
        verdicts = {}
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                verdicts[entry["id"]] = entry
    return verdicts, stopped


def grade(paths: list[str | Path], timeout: float = 600.0, progress=None) -> list[Row]:
    """One row per exercise (and question) of every notebook found."""
    rows = []
    for path in find_notebooks(paths):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
            ids = expected_ids(path, nb)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            rows.append(Row(str(path), "-", NOT_RUN, f"the notebook cannot be read: {e}"))
            continue
        if progress:
            progress(f"grading {path} ({len(ids)} exercises)")
        verdicts, stopped = run_notebook(path, timeout)
        for i in ids + [i for i in verdicts if i not in ids]:
            v = verdicts.get(i)
            if v is not None:
                rows.append(Row(str(path), i, v["status"], v["message"].splitlines()[0]))
            else:
                rows.append(Row(str(path), i, stopped or NOT_RUN, "its check did not run"))
    return rows


def table(rows: list[Row]) -> str:
    head = ("notebook", "exercise", "verdict")
    cells = [head] + [(r.notebook, r.exercise, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(3)).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    passed = sum(r.verdict == PASS for r in rows)
    return "\n".join(lines + [f"{passed} of {len(rows)} exercises pass"])


def write_csv(rows: list[Row], path: str | Path) -> None:
    """The gradebook: notebook, exercise, verdict and the verdict's first line, written atomically."""
    buffer = io.StringIO()
    w = csv.writer(buffer)
    w.writerow(["notebook", "exercise", "verdict", "detail"])
    w.writerows([r.notebook, r.exercise, r.verdict, r.detail] for r in rows)
    atomic_write(Path(path), lambda f: Path(f).write_text(buffer.getvalue(), encoding="utf-8", newline=""))
