"""The project's promises about itself: one dependency list, one test command, exercises in sync."""

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from minibert.course import exercises

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli, the same parser before it joined the library
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements() -> dict[str, str]:
    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("minibert")]
    out = {}
    for r in reqs:
        req = Requirement(r)
        out[normalise(req.name)] = str(req.specifier)
    return out


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert env["name"] == "minibert"
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or normalise(item.split(">")[0].split("=")[0].split("<")[0]) in ("python", "pip"):
                continue
            req = Requirement(item)
            out[normalise(req.name)] = str(req.specifier)
    return out


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_python_version_agrees():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert py.removeprefix("python") == pyproject()["project"]["requires-python"]


def readme_commands() -> list[str]:
    """The commands of the README's Start section."""
    start = (ROOT / "README.md").read_text(encoding="utf-8").split("## Start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", start, flags=re.S)
    return [line.strip() for b in blocks for line in b.strip().splitlines()]


def test_readme_has_setup_and_test_commands_and_ci_runs_the_test_command_verbatim():
    commands = readme_commands()
    assert len(commands) == 2, commands
    setup, test = commands
    assert "jupyter lab" in setup and "torch==2.13.0" in setup
    assert "pytest" in test and test.startswith("pip install torch==2.13.0")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert test in ci
    # torch is installed, pinned, before anything that depends on it
    torch_line = next(i for i, line in enumerate(ci) if "torch==2.13.0" in line)
    assert torch_line < ci.index(test)


def test_readme_chapter_map_lists_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"(notebooks/{nb.name})" in readme, f"README's chapter map lacks {nb.name}"


def test_every_solution_has_its_exercise_twin_and_they_are_current():
    assert exercises.generate(ROOT, check=True) == []
    solutions = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert solutions == {p.name for p in (ROOT / "exercises").glob("*.ipynb")}


def test_notebooks_store_their_outputs():
    import json

    for folder in ("notebooks", "solutions"):
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
            code = [c for c in cells if c["cell_type"] == "code"]
            assert any(c.get("outputs") for c in code), f"{folder}/{nb.name} has no stored outputs"


def test_ruff_finds_nothing_to_fix_or_format():
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]' brings the pinned version)")
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"ruff {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_the_version_is_written_once_and_the_readme_maps_every_module():
    init = (ROOT / "minibert" / "__init__.py").read_text()
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+"$', init, flags=re.M)
    project = pyproject()
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert (ROOT / "LICENSE").is_file() and project["project"]["license"] == "MIT"
    version = re.search(r'__version__ = "(.+)"', init)[1]
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
    block = (ROOT / "README.md").read_text().split("## The package", 1)[1].split("```", 2)[1]
    mapped, folder = set(), ""
    for line in block.splitlines()[2:]:  # after "minibert/": two spaces for the top level, four inside a folder
        name = line.split()[0] if line.strip() else ""
        if line.startswith("    "):
            mapped.add(folder + name)
        elif name.endswith("/"):
            folder = name
            mapped.add(name)
        elif name:
            folder = ""
            mapped.add(name)
    for module in sorted((ROOT / "minibert").rglob("*.py")):
        rel = module.relative_to(ROOT / "minibert")
        if module.name == "__init__.py" or rel.parts[0] in ("hf",):  # hf/ is listed as one folder
            continue
        assert rel.as_posix() in mapped, f"README's package map lacks minibert/{rel.as_posix()}"


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_a_chapter_opens_in_colab_and_installs_the_course_only_where_it_is_missing(nb, monkeypatch):
    import json
    import subprocess

    repo = pyproject()["project"]["urls"]["Repository"]
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    badge = f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/main/notebooks/"
    fix = "python tools/colab_badges.py writes them from pyproject.toml"
    assert f"]({badge}{nb.name})" in "".join(cells[0]["source"]), f"{nb.name}: no Colab badge for {repo} ({fix})"
    install = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    assert f'"minibert[course] @ git+{repo}"' in install, f"{nb.name}: no install cell for {repo} ({fix})"

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(install, {})  # minibert is importable here: nothing is installed, nothing touches the network
    assert calls == []
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    exec(install, {})
    assert calls and calls[0][0][-1] == f"minibert[course] @ git+{repo}"


def test_the_badges_and_install_cells_follow_the_repository(tmp_path):
    import importlib.util
    import json
    import shutil

    spec = importlib.util.spec_from_file_location("colab_badges", ROOT / "tools" / "colab_badges.py")
    colab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(colab)
    nb = tmp_path / "04_attention.ipynb"
    shutil.copy(ROOT / "notebooks" / nb.name, nb)
    assert not colab.update(nb, colab.repository())  # the chapter agrees with pyproject.toml
    assert colab.update(nb, "https://github.com/someone/fork")
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    assert "/github/someone/fork/blob/main/notebooks/04_attention.ipynb)" in "".join(cells[0]["source"])
    installs = [c for c in cells if 'find_spec("minibert")' in "".join(c["source"])]
    assert len(installs) == 1 and "git+https://github.com/someone/fork" in "".join(installs[0]["source"])
    assert not colab.update(nb, "https://github.com/someone/fork")  # once is enough
