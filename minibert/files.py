"""Reading and writing weight files: atomic writes, and clear errors for missing or corrupt files."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A weights file or state dict that cannot be used as it is; the message says what to do."""


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o644 under the usual umask (0o022). mkstemp's 0o600 would make a
    shared checkpoint unreadable to everyone but its writer."""
    return 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "r+b") as f:  # Windows flushes a file to disk only through a handle that may write
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # the usual permissions, set before the file appears under its name
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _replace(src: str, dst: Path, tries: int = 50) -> None:
    """os.replace, retried for a few seconds on Windows, where a file that another process is reading (a cache that
    two processes fill at once) cannot be replaced until it is closed."""
    for attempt in range(tries):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if os.name != "nt" or attempt == tries - 1:
                raise
            time.sleep(0.05)


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def check_readable(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path if it is a non-empty regular file; otherwise a message that says what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a {what}")
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path} is empty (0 bytes): it was cut short while being written or copied; write or copy it again"
        )
    return path


def _unreadable(path: Path, e: OSError) -> CheckpointError:
    if isinstance(e, PermissionError):
        return CheckpointError(f"cannot read {path}: permission denied; ask its owner to make it readable (chmod a+r)")
    return CheckpointError(f"cannot read {path} ({e.strerror or e})")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> dict:
    """A JSON object from ``path``, or a message that names the file and says it is damaged."""
    path = check_readable(path, what)
    try:
        text = path.read_text(encoding="utf-8")
        d = json.loads(text)
    except OSError as e:
        raise _unreadable(path, e) from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        why = f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise CheckpointError(
            f"{path} is damaged (not valid JSON: {why}); it was probably cut short while being written or "
            "copied: copy or save it again"
        ) from e
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} is damaged: it holds a JSON {type(d).__name__}, not an object of settings")
    return d


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a ``.safetensors`` or PyTorch ``.bin``/``.pt`` file (tensors only: ``weights_only=True``)."""
    path = check_readable(path, "weights file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before it fails on a damaged file
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise _unreadable(path, e) from e
    except Exception as e:  # safetensors and torch raise many kinds of errors for damaged files
        raise _damaged(path, e) from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return sd


def refused_pickle(path: Path, e: Exception) -> bool:
    """Whether torch's tensors-only loader stopped at a Python object (a class or function) in the file."""
    return isinstance(e, pickle.UnpicklingError) and "Unsupported global" in str(e)


def _damaged(path: Path, e: Exception) -> CheckpointError:
    if refused_pickle(path, e):
        return CheckpointError(
            f"{path} holds Python objects other than tensors, which minibert refuses to load: unpickling them could "
            "run any code. It may be a whole model saved with torch.save(model) or a checkpoint of another program; "
            "ask its author for the weights alone (model.safetensors, or a state_dict of tensors)"
        )
    return CheckpointError(
        f"could not read {path} ({short_reason(e)}); the file is corrupt or truncated, or not a weights file: save or "
        "copy it again"
    )


def short_reason(e: Exception) -> str:
    """The gist of a loader's error: its type and first sentence (torch's messages run to a page of advice)."""
    text = str(e).strip()
    if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in text:
        text = "not a file of tensors: " + (text.split("WeightsUnpickler error:")[-1].strip().splitlines() or [""])[0]
    first = (text.splitlines() or [""])[0].split(". ")[0]
    return f"{type(e).__name__}: {first[:100]}"
