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


def readme_test_command() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return next(line.strip() for line in lines if "python -m pytest -n 2" in line)


def test_gpu_workflow_runs_the_documented_command_on_a_gpu_runner():
    wf = workflow("gpu.yml")
    job = next(iter(wf["jobs"].values()))
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    commands = runs(wf)
    assert "nvidia-smi" in commands
    documented = readme_block("GPU runner").splitlines()
    for line in documented:
        assert line.strip() in commands, line


def test_cpu_workflow_covers_three_systems_and_the_oldest_and_newest_python():
    job = next(iter(workflow("ci.yml")["jobs"].values()))
    assert job["runs-on"] == "${{ matrix.os }}"
    matrix = job["strategy"]["matrix"]
    cells = [(c["os"], str(c["python"])) for c in matrix["include"]]
    systems = {os.split("-")[0] for os, _ in cells}
    assert systems == {"ubuntu", "macos", "windows"}, cells
    assert {"3.10", "3.13"} <= {py for _, py in cells}, cells
    assert job["strategy"].get("fail-fast") is False  # one platform's failure does not hide another's


def test_every_cpu_job_installs_a_cpu_torch_then_runs_the_readme_test_command():
    job = next(iter(workflow("ci.yml")["jobs"].values()))
    steps = [s for s in job["steps"] if "run" in s]
    test_cmd = readme_test_command()
    tests = next(i for i, s in enumerate(steps) if test_cmd in [line.strip() for line in s["run"].splitlines()])
    torch_steps = [s for s in steps[:tests] if "torch==2.13.0" in s["run"]]
    # before the README command, every system gets a CPU torch: Linux and Windows from PyTorch's CPU index (PyPI's
    # Linux wheel is the CUDA build), macOS from PyPI (its wheels are the CPU/MPS build)
    cpu_index = [s for s in torch_steps if "--index-url https://download.pytorch.org/whl/cpu" in s["run"]]
    assert cpu_index and all(s.get("if") == "runner.os != 'macOS'" for s in cpu_index), cpu_index
    mac = [s for s in torch_steps if s.get("if") == "runner.os == 'macOS'"]
    assert mac and all("--index-url" not in s["run"] for s in mac), mac
    assert all(s.get("if") in ("runner.os != 'macOS'", "runner.os == 'macOS'") for s in torch_steps)
    assert "if" not in steps[tests]  # the README's command runs on every system
    assert job["env"].get("MINIBERT_DEVICE") == "cpu"
