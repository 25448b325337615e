"""Classification metrics: accuracy, F1, and the mean and spread of a score over folds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _labels(x: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def accuracy(pred, target) -> float:
    """The fraction of predictions equal to the targets."""
    p, t = _labels(pred), _labels(target)
    if p.shape != t.shape:
        raise ValueError(f"{p.shape[0] if p.ndim else p} predictions for {t.shape[0] if t.ndim else t} targets")
    return float((p == t).mean()) if t.size else float("nan")


def f1_score(pred, target, average: str = "binary", positive: int = 1) -> float:
    """F1 = 2PR / (P + R): 'binary' for the ``positive`` class, or 'macro' (the mean over classes present).

    A class never predicted and never present scores 0 here, as in scikit-learn (zero_division=0).
    """
    p, t = _labels(pred), _labels(target)
    if p.shape != t.shape:
        raise ValueError(f"predictions {p.shape} and targets {t.shape} differ in shape")
    if average not in ("binary", "macro"):
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")

    def f1(c: int) -> float:
        tp = int(((p == c) & (t == c)).sum())
        denom = int((p == c).sum()) + int((t == c).sum())  # 2TP + FP + FN
        return 2 * tp / denom if denom else 0.0

    if average == "binary":
        return f1(positive)
    return float(np.mean([f1(c) for c in np.union1d(p, t)]))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over folds; a single fold has no spread (std 0)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
