"""Write each chapter's "Open in Colab" badge and its install cell from the repository named in pyproject.toml.

    python tools/colab_badges.py

The badge goes under the chapter's title; the install cell is the first code cell, and installs the course from the
repository only where ``minibert`` is not importable (Colab, a fresh kernel). Run it after changing
``[project.urls] Repository``; tests/test_project.py checks that every chapter agrees with pyproject.toml.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BADGE = re.compile(r"\[!\[Open in Colab\]\([^)]*\)\]\([^)]*\)")

INSTALL = """\
# Where minibert is not installed yet (Colab, a fresh kernel), install the course; elsewhere this does nothing.
import importlib.util
import subprocess
import sys

COURSE = "minibert[course] @ git+{repo}"  # the repository in pyproject.toml
if importlib.util.find_spec("minibert") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", COURSE], check=True)"""


def repository() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]["Repository"]


def badge(repo: str, name: str) -> str:
    slug = repo.removeprefix("https://github.com/")
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name})")  # fmt: skip


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def update(path: Path, repo: str) -> bool:
    """Badge and install cell of one chapter; returns whether the file changed."""
    before = path.read_text(encoding="utf-8")
    nb = json.loads(before)
    title = nb["cells"][0]
    text = source(title)
    if BADGE.search(text):
        text = BADGE.sub(badge(repo, path.name), text)
    else:
        first, _, rest = text.partition("\n")
        text = f"{first}\n\n{badge(repo, path.name)}\n{rest}"
    title["source"] = text
    install = INSTALL.format(repo=repo)
    code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    if 'find_spec("minibert")' in source(nb["cells"][code]):
        nb["cells"][code]["source"] = install
    else:
        nb["cells"].insert(code, {"cell_type": "code", "execution_count": None, "id": uuid.uuid4().hex[:8],
                                  "metadata": {"tags": ["install"]}, "outputs": [], "source": install})  # fmt: skip
    after = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def main() -> None:
    repo = repository()
    changed = [p.name for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if update(p, repo)]
    print(f"{repo}: " + (", ".join(changed) if changed else "every chapter already agrees"))


if __name__ == "__main__":
    main()
