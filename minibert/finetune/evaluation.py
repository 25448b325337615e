"""Scores with their spread over folds: stratified k-fold cross-validation, and a linear probe on frozen
features (L2-regularised logistic regression).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .classifier import EncoderForSequenceClassification, FinetuneConfig, fit_classifier, predict, set_trainable
from .data import Encoded
from .metrics import _labels, accuracy, f1_score, mean_std


@dataclass
class CVResult:
    """Scores per fold, and their mean and spread."""

    accuracy: list[float] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)  # whatever else each fold reported (epochs, ...)

    def add(self, pred, target, **extra) -> None:
        binary = set(np.union1d(_labels(pred), _labels(target)).tolist()) <= {0, 1}
        self.accuracy.append(accuracy(pred, target))
        self.f1.append(f1_score(pred, target, average="binary" if binary else "macro"))
        self.extra.append(extra)

    def summary(self, metric: str = "accuracy") -> str:
        """'72.5 ± 3.1': the mean and the spread over folds, in percent."""
        m, s = mean_std(getattr(self, metric))
        return f"{100 * m:.1f} ± {100 * s:.1f}"

    def row(self) -> dict:
        (am, asd), (fm, fsd) = mean_std(self.accuracy), mean_std(self.f1)
        return {"accuracy": am, "accuracy_std": asd, "f1": fm, "f1_std": fsd, "folds": len(self.accuracy)}


# ---------------------------------------------------------------------------------------------------------------
# k-fold cross-validation


def kfold(n: int, k: int = 5, labels=None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index splits; every item is tested exactly once. With ``labels`` the folds are stratified
    (each keeps the class balance), which matters when a fold holds only a few dozen texts.
    """
    if not 2 <= k <= n:
        raise ValueError(f"k-fold needs 2 <= k <= n; got k={k} for n={n}")
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [rng.permutation(n)]
    else:
        y = _labels(labels)
        if len(y) != n:
            raise ValueError(f"{len(y)} labels for {n} items")
        groups = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    fold_of = np.empty(n, dtype=int)
    start = 0
    for g in groups:  # deal each class round-robin, continuing where the previous class stopped
        fold_of[g] = (start + np.arange(len(g))) % k
        start = (start + len(g)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def train_val_split(index: np.ndarray, labels, fraction: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Carve a stratified validation part (for early stopping) out of a training fold's ``index``."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    y = _labels(labels)[index]
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = rng.permutation(index[y == c])
        val.extend(members[: max(1, int(round(len(members) * fraction)))])
    val = np.sort(np.asarray(val, dtype=int))
    return np.setdiff1d(index, val), val


def cross_validate(
    fit_predict: Callable[[np.ndarray, np.ndarray], object],
    labels,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> CVResult:
    """Run ``fit_predict(train_idx, test_idx) -> predicted labels of test_idx`` on every fold and score it.

    ``fit_predict`` may also return (predictions, dict of extra facts), kept in ``CVResult.extra``.
    """
    y = _labels(labels)
    result = CVResult()
    for train_idx, test_idx in folds:
        if np.intersect1d(train_idx, test_idx).size:
            raise ValueError("a fold's training and test indices overlap: the score would be optimistic")
        out = fit_predict(train_idx, test_idx)
        pred, extra = out if isinstance(out, tuple) else (out, {})
        result.add(_labels(pred), y[test_idx], **extra)
    return result


def finetune_fold(
    make_model: Callable[[], EncoderForSequenceClassification],
    data: Encoded,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    config: FinetuneConfig | None = None,
    mode: str | int = "full",
    val_fraction: float = 0.15,
    freeze_embeddings: bool = False,
) -> tuple[np.ndarray, dict]:
    """One fold of fine-tuning: a fresh model, a validation part of the training fold for early stopping, then
    predictions on the untouched test fold.
    """
    config = config or FinetuneConfig()
    if data.labels is None:
        raise ValueError("finetune_fold needs labelled data (Encoded.labels)")
    fit_idx, val_idx = train_val_split(np.asarray(train_idx), data.labels, val_fraction, seed=config.seed)
    model = make_model()
    set_trainable(model, mode, freeze_embeddings)
    fit = fit_classifier(model, data.subset(fit_idx), data.subset(val_idx), config)
    pred = predict(model, data.subset(test_idx), batch_size=max(config.batch_size, 32)).argmax(-1).numpy()
    return pred, {"best_epoch": fit.best_epoch, "epochs": len(fit.history)}


# ---------------------------------------------------------------------------------------------------------------
# A linear probe on frozen features: L2-regularised logistic regression


class LogisticRegression:
    """Logistic regression fit by L-BFGS, minimising 0.5 ||W||^2 + C * sum_i cross-entropy_i (scikit-learn's
    objective: the intercept is not penalised). Binary problems use one logit, more classes a softmax.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500, tol: float = 1e-6) -> None:
        if C <= 0:
            raise ValueError(f"C must be positive, got {C}")
        self.C, self.max_iter, self.tol = C, max_iter, tol
        self.weight: torch.Tensor | None = None  # (K or 1, F)
        self.bias: torch.Tensor | None = None
        self.classes: np.ndarray | None = None

    def fit(self, X, y) -> LogisticRegression:
        X = torch.as_tensor(np.asarray(X), dtype=torch.float64)
        y_np = _labels(y)
        if X.dim() != 2 or X.size(0) != len(y_np):
            raise ValueError(
                f"X must be (n, features) with one label per row; got X {tuple(X.shape)}, {len(y_np)} labels"
            )
        self.classes = np.unique(y_np)
        if len(self.classes) < 2:
            raise ValueError(f"need at least two classes to fit, got only {self.classes.tolist()}")
        target = torch.as_tensor(np.searchsorted(self.classes, y_np))
        K = 1 if len(self.classes) == 2 else len(self.classes)
        W = torch.zeros(K, X.size(1), dtype=torch.float64, requires_grad=True)
        b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [W, b], lr=1, max_iter=self.max_iter, tolerance_grad=self.tol, tolerance_change=1e-12,
            history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure() -> torch.Tensor:
            opt.zero_grad()
            z = X @ W.T + b  # (n, K)
            if K == 1:
                data = F.binary_cross_entropy_with_logits(z[:, 0], target.double(), reduction="sum")
            else:
                data = F.cross_entropy(z, target, reduction="sum")
            loss = 0.5 * (W * W).sum() + self.C * data
            loss.backward()
            return loss

        opt.step(closure)
        self.weight, self.bias = W.detach(), b.detach()
        return self

    def decision_function(self, X) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("call fit(X, y) before predicting")
        X = torch.as_tensor(np.asarray(X), dtype=torch.float64)
        if X.dim() != 2 or X.size(1) != self.weight.size(1):
            raise ValueError(f"X must be (n, {self.weight.size(1)}), got {tuple(X.shape)}")
        return X @ self.weight.T + self.bias  # (n, K)

    def predict_proba(self, X) -> np.ndarray:
        z = self.decision_function(X)
        if z.size(1) == 1:
            p1 = torch.sigmoid(z[:, 0])
            return torch.stack([1 - p1, p1], 1).numpy()
        return z.softmax(-1).numpy()

    def predict(self, X) -> np.ndarray:
        return self.classes[self.predict_proba(X).argmax(1)]


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale features by the training rows' mean and std only (using the test rows' statistics would leak)."""
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mu) / sd for a in (train, *others)]


def probe_fold(features, labels, train_idx, test_idx, C: float = 1.0, scale: bool = False) -> np.ndarray:
    """One fold of a linear probe: fit logistic regression on the training fold (features standardised with its
    statistics when ``scale``), predict the test fold. Returns the predicted labels of ``test_idx``.
    """
    X = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    y = _labels(labels)
    Xtr, Xte = X[train_idx], X[test_idx]
    if scale:
        Xtr, Xte = standardize(Xtr, Xte)
    return LogisticRegression(C=C).fit(Xtr, y[train_idx]).predict(Xte)
