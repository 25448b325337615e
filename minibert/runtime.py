"""Where the course runs: the device, the size profile, seeding, the cache of things built once, the chapter clock
and progress bars."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch

PROFILE_VAR = "MINIBERT_PROFILE"
PROFILES = ("smoke", "laptop", "full")
CACHE_VERSION = 1  # bump when a cached format changes: old files are then ignored


def cache_dir() -> Path:
    """Where the course keeps what it builds once (cleaned text, vocabularies, tokenized corpora, trained models):
    $MINIBERT_CACHE, else ~/.cache/minibert."""
    return Path(os.environ.get("MINIBERT_CACHE") or Path.home() / ".cache" / "minibert")


def get_device(prefer: str | None = None) -> torch.device:
    """cuda, then mps, then cpu (or ``prefer`` / the MINIBERT_DEVICE variable when set)."""
    prefer = prefer or os.environ.get("MINIBERT_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def profile() -> str:
    """How big the course's runs are, from $MINIBERT_PROFILE.

    smoke: seconds per notebook (the test suite); laptop: minutes on a laptop CPU (the default without a GPU);
    full: the real thing on a GPU (the default when cuda is present).
    """
    value = os.environ.get(PROFILE_VAR, "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "laptop"
    if value not in PROFILES:
        raise ValueError(f"{PROFILE_VAR}={value!r} is not a profile; use one of {PROFILES}")
    return value


def by_profile(smoke, laptop, full):
    """Pick a size for the current profile: ``steps = by_profile(5, 2000, 50000)``."""
    return {"smoke": smoke, "laptop": laptop, "full": full}[profile()]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator for data made on the CPU (device-independent)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------------
# What every chapter prints first and last: the profile it ran in, and how long it took

_chapter_clock: dict[str, float] = {}


def start_chapter(**facts) -> None:
    """Print the profile, device and threads this run uses, and start the chapter's clock.

    A chapter's first output says which profile its stored outputs come from (laptop or full, never smoke).
    """
    _chapter_clock.update(wall=time.perf_counter(), cpu=time.process_time())
    shown = [f"profile: {profile()}", f"device: {get_device()}", f"threads: {torch.get_num_threads()}"]
    print(", ".join(shown + [f"{k}: {v}" for k, v in facts.items()]))


def end_chapter() -> float:
    """Print how long the chapter took since :func:`start_chapter` (minutes of wall-clock time); returns it."""
    if not _chapter_clock:
        raise RuntimeError("call start_chapter() in the chapter's first cell")
    minutes = (time.perf_counter() - _chapter_clock["wall"]) / 60
    cpu = (time.process_time() - _chapter_clock["cpu"]) / 60
    print(f"run time: {minutes:.1f} min ({cpu:.1f} min of CPU; profile {profile()}, {torch.get_num_threads()} threads)")
    return minutes


# ---------------------------------------------------------------------------------------------------------------
# Progress bars

PROGRESS_VAR = "MINIBERT_PROGRESS"


def progress_bar(total: int | None = None, desc: str | None = None, disable: bool = False, **options):
    """A progress bar: a live one in JupyterLab (tqdm's widget) and in terminals.

    With ``$MINIBERT_PROGRESS=line`` (how the course stores its notebooks' outputs) it prints one line when it
    closes instead: a live bar redraws hundreds of times, and a stored notebook would keep every redraw.
    """
    if os.environ.get(PROGRESS_VAR, "").strip().lower() == "line":
        return LineProgress(total, desc, disable, unit=options.get("unit", "it"), initial=options.get("initial", 0))
    from tqdm.auto import tqdm  # the widget in a notebook (ipywidgets), text in a terminal

    return tqdm(total=total, desc=desc, disable=disable, **options)


class LineProgress:
    """The part of tqdm's interface the package uses, printing one summary line at the end."""

    def __init__(self, total: int | None, desc: str | None, disable: bool, unit: str = "it", initial: int = 0):
        self.total, self.desc, self.disable, self.unit = total, desc or "progress", disable, unit
        self.n, self.initial, self.postfix = initial, initial, ""
        self._start, self._closed = time.perf_counter(), False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self._closed or self.disable:
            self._closed = True
            return
        self._closed = True
        seconds = time.perf_counter() - self._start
        done = f"{self.n:,}" + (f"/{self.total:,}" if self.total is not None else "")
        rate = (self.n - self.initial) / seconds if seconds > 0 else 0.0
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit} in {seconds:.0f} s ({rate:,.1f} {self.unit}/s){tail}")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
