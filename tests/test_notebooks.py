"""What a learner sees on GitHub or on opening a chapter: outputs from a real laptop (or GPU) run, clean of warnings
and progress spam, in the kernel JupyterLab installs, with further reading, and the README's minutes from the run."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STORED = CHAPTERS + sorted((ROOT / "solutions").glob("*.ipynb"))
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text_of(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    return "".join(output.get("data", {}).get("text/plain", []))


def code_outputs(path: Path) -> list[str]:
    return ["".join(text_of(o) for o in c.get("outputs", [])) for c in cells(path) if c["cell_type"] == "code"]


def test_the_kernelspec_is_what_ipykernel_installs():
    from ipykernel.kernelspec import get_kernel_dict

    installed = get_kernel_dict()
    assert installed["display_name"] == KERNELSPEC["display_name"] and installed["language"] == KERNELSPEC["language"]
    for nb in STORED + sorted((ROOT / "exercises").glob("*.ipynb")):
        spec = json.loads(nb.read_text(encoding="utf-8"))["metadata"].get("kernelspec")
        assert spec == KERNELSPEC, f"{nb.relative_to(ROOT)}: kernelspec {spec} (JupyterLab would mark it modified)"


@pytest.mark.parametrize("nb", STORED, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_outputs_are_clean(nb):
    for i, cell in enumerate(c for c in cells(nb) if c["cell_type"] == "code"):
        where = f"{nb.relative_to(ROOT)} cell {i}"
        source = "".join(cell["source"])
        assert "NBVAL_" not in source, f"{where}: test markers belong in the cell's tags, not in its code"
        streams = [o for o in cell.get("outputs", []) if o["output_type"] == "stream"]
        assert len(streams) <= 3, f"{where}: {len(streams)} stream fragments (a progress bar's redraws?)"
        for o in cell.get("outputs", []):
            assert o["output_type"] != "error", f"{where}: stores an error"
            if o["output_type"] == "stream" and o["name"] == "stderr":
                assert not re.search(r"warning", text_of(o), re.I), f"{where}: a warning box: {text_of(o)[:200]}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_a_chapter_stores_one_laptop_or_gpu_run_and_its_time(nb):
    outputs = [o for o in code_outputs(nb) if o.strip()]
    first = re.search(r"profile: (\w+)", outputs[0])
    assert first and first[1] in ("laptop", "full"), f"{nb.name}: its stored outputs come from the {first} profile"
    assert re.search(r"run time: [\d.]+ min", outputs[-1]), f"{nb.name}: the last output is not the run time"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_a_chapter_ends_with_further_reading(nb):
    markdown = ["".join(c["source"]) for c in cells(nb) if c["cell_type"] == "markdown"]
    section = next((m for m in markdown if re.match(r"#+ Further reading", m.strip())), None)
    assert section, f"{nb.name} has no 'Further reading' section"
    assert len(re.findall(r"\]\(https?://", section)) >= 2, f"{nb.name}: further reading needs at least two links"


def test_the_readme_minutes_are_the_stored_run_times():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for nb in CHAPTERS:
        row = next(line for line in readme.splitlines() if f"(notebooks/{nb.name})" in line)
        stated = float(row.rstrip(" |").rsplit("|", 1)[1])
        measured = float(re.search(r"run time: ([\d.]+) min", code_outputs(nb)[-1])[1])
        assert stated == max(1, round(measured)), f"{nb.name}: README says {stated} min, the stored run took {measured}"
