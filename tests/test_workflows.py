"""The CI workflows are valid and run exactly the commands the README documents."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def workflow(name: str) -> dict:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    assert wf["name"] and wf["jobs"]
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert on, f"{name} has no trigger"
    for job in wf["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert "run" in step or "uses" in step
    return wf


def runs(wf: dict) -> list[str]:
    return [line.strip() for job in wf["jobs"].values() for s in job["steps"] for line in s.get("run", "").splitlines()]


def readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"{title}.*?```bash\n(.*?)```", text, flags=re.S)
    assert m, f"README has no command under {title!r}"
    return m[1].strip()


def test_gpu_workflow_runs_the_documented_command_on_a_gpu_runner():
    wf = workflow("gpu.yml")
    job = next(iter(wf["jobs"].values()))
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    commands = runs(wf)
    assert "nvidia-smi" in commands
    documented = readme_block("GPU runner").splitlines()
    for line in documented:
        assert line.strip() in commands, line


def test_cpu_workflow_runs_the_readme_test_command():
    commands = runs(workflow("ci.yml"))
    test_cmd = next(
        c for c in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if "python -m pytest -n 2" in c
    )
    assert test_cmd.strip() in commands
