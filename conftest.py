"""Test setup: the smoke profile for every notebook kernel, one thread per worker, nbval's guard.

It sits at the root so that it also applies to ``pytest notebooks/...``.
"""

import os

# Kernels started by nbval inherit this environment, so every notebook runs in the smoke profile.
os.environ.setdefault("MINIBERT_PROFILE", "smoke")
# Two pytest-xdist workers share two cores: one thread each avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_runtest_setup(item):
    # Strict checks in the exercise notebooks' kernels (started at a notebook's first cell, with this environment):
    # under solutions/ every check must pass, under exercises/ every check must say "not implemented".
    folder = item.path.parent.name if item.path.suffix == ".ipynb" else ""
    expected = {"solutions": "pass", "exercises": "not-implemented"}.get(folder)
    if expected:
        os.environ["MINIBERT_STRICT_CHECKS"] = expected
    else:
        os.environ.pop("MINIBERT_STRICT_CHECKS", None)


def pytest_collectstart(collector):
    # nbval's documented hook, guarded: under pytest 9 not every collector has skip_compare
    if hasattr(collector, "skip_compare"):
        collector.skip_compare += ("text/html", "application/javascript", "stderr", "image/png", "image/svg+xml")
