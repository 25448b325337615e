"""Where the course runs: the device, the size profile, seeding, and the cache of things built once."""

from __future__ import annotations

import os
import random
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
