"""The tool that stores the chapters' outputs carries each chapter's measured run time into the README."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("store_outputs", ROOT / "tools" / "store_outputs.py")
store_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(store_outputs)


def notebook(last_output: str) -> str:
    cell = {"cell_type": "code", "source": ["end_chapter()"], "metadata": {}, "execution_count": 1,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": [last_output]}]}  # fmt: skip
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_readme_minutes_follow_the_stored_run_times(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_a.ipynb").write_text(notebook("run time: 3.6 min (2.0 min of CPU)\n"))
    (tmp_path / "notebooks" / "02_b.ipynb").write_text(notebook("run time: 0.2 min\n"))
    (tmp_path / "notebooks" / "03_c.ipynb").write_text(notebook("no time printed\n"))
    readme = tmp_path / "README.md"
    readme.write_text(
        "| # | chapter | what | minutes |\n|---|---|---|---|\n"
        "| 01 | [A](notebooks/01_a.ipynb) | a | 9 |\n| 02 | [B](notebooks/02_b.ipynb) | b | 9 |\n"
        "| 03 | [C](notebooks/03_c.ipynb) | c | 7 |\n"
    )
    monkeypatch.setattr(store_outputs, "ROOT", tmp_path)
    assert store_outputs.update_readme_minutes(readme) == ["01_a.ipynb", "02_b.ipynb"]
    rows = readme.read_text().splitlines()[2:]
    assert [r.rsplit("|", 2)[1].strip() for r in rows] == ["4", "1", "7"]  # rounded, at least 1, untouched


def test_tidy_merges_consecutive_prints_and_drops_widget_state():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="epoch 1\n"),
        nbformat.v4.new_output("stream", name="stdout", text="epoch 2\n"),
        nbformat.v4.new_output("stream", name="stderr", text="note\n"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
    ]
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    store_outputs.tidy(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stdout", "epoch 1\nepoch 2\n"),
        ("stderr", "note\n"),
        ("stdout", "done\n"),
    ]
    assert "widgets" not in nb.metadata and nb.metadata["kernelspec"] == store_outputs.KERNELSPEC
