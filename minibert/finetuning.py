"""Fine-tuning and sentence embeddings.

Two ways to use a pretrained encoder on a new task:

* **fine-tune** it: put a small head on a pooled vector ([CLS], BERT's pooler, a mean...) and train, either the head
  alone on frozen features (a *linear probe*) or everything (*full fine-tuning*), with early stopping and k-fold
  cross-validation, because the datasets a course can ship are tiny and one split's accuracy is mostly noise;
* **embed** sentences: pool the token vectors into one vector per text, normalise, and compare by cosine.

The pieces take tensors, not texts, so they work with any tokenizer; :func:`encode` turns texts (or text pairs)
into an :class:`Encoded` batch with the tokenizer API of :mod:`minibert.tokenization`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import Encoder, EncoderOutput

# ---------------------------------------------------------------------------------------------------------------
# Pooling: (B, T, C) token vectors and a (B, T) mask -> (B, C), one vector per text


def _mask(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The (B, T, 1) float mask, all ones when no mask is given; refuses a mask of the wrong shape."""
    if mask is None:
        return hidden.new_ones(hidden.shape[:2] + (1,))
    if mask.shape != hidden.shape[:2]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected (batch, seq_len) = {tuple(hidden.shape[:2])}")
    return mask[..., None].to(hidden.dtype)


def cls_pooling(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The vector of the first token, [CLS]: what BERT's classifier reads."""
    return hidden[:, 0]  # (B, C)


def mean_pooling(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Average over real tokens only: padding must not dilute the mean (sentence-transformers' default)."""
    m = _mask(hidden, mask)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, C)


def max_pooling(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Feature-wise maximum over real tokens (padding set to -inf so it can never win)."""
    m = _mask(hidden, mask)
    return hidden.masked_fill(m == 0, float("-inf")).amax(1)  # (B, C)


def weighted_mean_pooling(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean with weights growing with position, w_t proportional to t (Muennighoff's SGPT, 2022).

    Later tokens have seen more of the sentence in a causal model; in a bidirectional encoder it is one more
    weighting to measure, not a rule.
    """
    m = _mask(hidden, mask)  # (B, T, 1)
    w = torch.arange(1, hidden.size(1) + 1, device=hidden.device, dtype=hidden.dtype)[None, :, None] * m
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)  # (B, C)


def layer_mix(hidden_states: Sequence[torch.Tensor], weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """A weighted sum of layers, sum_l w_l h_l (ELMo's scalar mix with fixed weights): (L, ...) -> (...)."""
    w = torch.as_tensor(weights, dtype=hidden_states[0].dtype, device=hidden_states[0].device)
    if w.numel() != len(hidden_states):
        raise ValueError(f"{w.numel()} weights for {len(hidden_states)} layers")
    return torch.einsum("l,l...->...", w, torch.stack(tuple(hidden_states)))


TOKEN_POOLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    "cls": cls_pooling,
    "mean": mean_pooling,
    "max": max_pooling,
    "weighted_mean": weighted_mean_pooling,
}

# every strategy :func:`pool` knows, and what it computes
POOLINGS: dict[str, str] = {
    "cls": "[CLS] vector of the last layer",
    "pooler": "BERT's pooled output, tanh(W h_[CLS] + b) (trained by next-sentence prediction)",
    "mean": "mean of the last layer over real tokens",
    "max": "feature-wise max of the last layer over real tokens",
    "weighted_mean": "position-weighted mean of the last layer (w_t proportional to t)",
    "mean_second_to_last": "mean of the second-to-last layer (bert-as-service's default)",
    "mean_first_last": "mean of the average of the first and last blocks' outputs",
    "mean_last_four": "mean of the sum of the last four layers (a feature-based recipe of the BERT paper)",
}


def needs_hidden_states(strategy: str) -> bool:
    """Whether ``strategy`` reads layers other than the last (so the encoder must return hidden states)."""
    _check_strategy(strategy)
    return strategy in ("mean_second_to_last", "mean_first_last", "mean_last_four")


def _check_strategy(strategy: str) -> None:
    if strategy not in POOLINGS:
        raise ValueError(f"unknown pooling {strategy!r}; choose one of {sorted(POOLINGS)}")


def pool(out: EncoderOutput, attention_mask: torch.Tensor | None, strategy: str = "mean") -> torch.Tensor:
    """One vector per text from an encoder's output, by the named strategy (see :data:`POOLINGS`)."""
    _check_strategy(strategy)
    if strategy in TOKEN_POOLINGS:
        return TOKEN_POOLINGS[strategy](out.last_hidden_state, attention_mask)
    if strategy == "pooler":
        if out.pooler_output is None:
            raise ValueError("this encoder has no pooler (config.pooler=False); use 'cls' or 'mean' instead")
        return out.pooler_output
    hs = out.hidden_states
    if hs is None:
        raise ValueError(f"pooling {strategy!r} reads several layers: run the encoder with output_hidden_states=True")
    if strategy == "mean_second_to_last":
        h = hs[-2]
    elif strategy == "mean_first_last":
        h = layer_mix((hs[1], hs[-1]), (0.5, 0.5))
    else:  # mean_last_four
        h = layer_mix(hs[-4:], (1.0,) * len(hs[-4:]))
    return mean_pooling(h, attention_mask)


def normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit L2 length along the last axis, so a dot product is the cosine."""
    return F.normalize(x, dim=-1, eps=eps)


# ---------------------------------------------------------------------------------------------------------------
# Tokenised data: padded once, trimmed per batch


@dataclass
class Encoded:
    """Token ids of N texts (or text pairs), right-padded to a common length, with optional labels."""

    input_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, T), 1 = token, 0 = padding
    token_type_ids: torch.Tensor | None = None  # (N, T), segment A = 0, B = 1
    labels: torch.Tensor | None = None  # (N,)

    def __post_init__(self) -> None:
        if self.input_ids.dim() != 2 or self.attention_mask.shape != self.input_ids.shape:
            raise ValueError(
                f"input_ids {tuple(self.input_ids.shape)} and attention_mask {tuple(self.attention_mask.shape)} "
                "must both be (N, T)"
            )
        if self.labels is not None and len(self.labels) != len(self.input_ids):
            raise ValueError(f"{len(self.labels)} labels for {len(self.input_ids)} texts")
        if self.attention_mask.numel() and bool((self.attention_mask[:, 1:] > self.attention_mask[:, :-1]).any()):
            raise ValueError("padding must be on the right (attention_mask 1...1 0...0 in every row)")

    def __len__(self) -> int:
        return self.input_ids.size(0)

    @property
    def lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(1)  # (N,)

    def subset(self, index: torch.Tensor | Sequence[int] | np.ndarray) -> Encoded:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        pick = lambda t: None if t is None else t[idx]
        return Encoded(self.input_ids[idx], self.attention_mask[idx], pick(self.token_type_ids), pick(self.labels))

    def batch(self, index: torch.Tensor | Sequence[int], device: torch.device | str | None = None) -> dict:
        """The model inputs of the rows in ``index``, cut to their longest row (no compute spent on padding)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        T = max(int(self.lengths[idx].max()), 1) if len(idx) else 1
        out = {"input_ids": self.input_ids[idx, :T], "attention_mask": self.attention_mask[idx, :T]}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids[idx, :T]
        return {k: v.to(device) for k, v in out.items()} if device is not None else out


def encode(
    tokenizer: Callable,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    labels: Sequence[int] | torch.Tensor | None = None,
    max_length: int = 128,
) -> Encoded:
    """Tokenise texts (and second segments ``pairs``: [CLS] a [SEP] b [SEP]) with a minibert BertTokenizer."""
    if isinstance(texts, str):
        raise TypeError("encode takes a list of texts; wrap a single text as [text]")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(pairs)} second segments for {len(texts)} texts")
    kwargs = {"pairs": list(pairs)} if pairs is not None else {}
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt", **kwargs)
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return Encoded(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), y)


def length_batches(lengths: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Indices grouped into batches of similar length (for inference: far less padding than random batches)."""
    order = torch.argsort(lengths, stable=True)
    return list(order.split(batch_size))


def shuffled_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, group: int = 4
) -> list[torch.Tensor]:
    """Random training batches of similar lengths: shuffle, sort each run of ``group`` batches by length, cut,
    and shuffle the batches. Batches stay random (what SGD wants) but carry far less padding.
    """
    perm = torch.randperm(len(lengths), generator=generator)
    batches = []
    for chunk in perm.split(batch_size * max(1, group)):
        batches += list(chunk[torch.argsort(lengths[chunk], stable=True)].split(batch_size))
    order = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in order]


# ---------------------------------------------------------------------------------------------------------------
# Sentence embeddings and cosine search


@torch.no_grad()
def embed(
    encoder: Encoder,
    data: Encoded,
    pooling: str | Sequence[str] = "mean",
    normalized: bool = True,
    batch_size: int = 64,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """(N, C) sentence embeddings on the CPU; several strategies at once give a dict (one forward pass)."""
    names = [pooling] if isinstance(pooling, str) else list(pooling)
    for name in names:
        _check_strategy(name)
    hidden = any(needs_hidden_states(n) for n in names)
    was_training, device = encoder.training, next(encoder.parameters()).device
    encoder.eval()
    try:
        parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        order = length_batches(data.lengths, batch_size)
        for idx in order:
            b = data.batch(idx, device)
            out = encoder(**b, output_hidden_states=hidden)
            for n in names:
                v = pool(out, b["attention_mask"], n).float()
                parts[n].append((normalize(v) if normalized else v).cpu())
        inverse = torch.argsort(torch.cat(order)) if order else torch.zeros(0, dtype=torch.long)
        result = {
            n: torch.cat(v)[inverse] if v else torch.zeros(0, encoder.config.hidden_size) for n, v in parts.items()
        }
    finally:
        encoder.train(was_training)
    return result[pooling] if isinstance(pooling, str) else result


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(Q, C) x (N, C) -> (Q, N) cosines."""
    return normalize(a.float()) @ normalize(b.float()).T


def cosine_search(queries: torch.Tensor, corpus: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The k corpus rows nearest each query by cosine: (scores (Q, k), indices (Q, k)), best first."""
    if queries.dim() == 1:
        queries = queries[None]
    if queries.size(-1) != corpus.size(-1):
        raise ValueError(f"queries have {queries.size(-1)} features, the corpus {corpus.size(-1)}: same encoder?")
    k = min(k, corpus.size(0))
    return cosine_similarity_matrix(queries, corpus).topk(k, dim=-1)


def retrieval_scores(queries: torch.Tensor, corpus: torch.Tensor, targets: Sequence[int] | torch.Tensor) -> dict:
    """Each query has one right answer, corpus row ``targets[i]``: recall@1, recall@5 and mean reciprocal rank."""
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    sims = cosine_similarity_matrix(queries, corpus)  # (Q, N)
    right = sims.gather(1, targets[:, None])  # (Q, 1)
    rank = (sims > right).sum(1) + 1  # 1 = the right answer is the nearest
    return {
        "recall@1": float((rank <= 1).float().mean()),
        "recall@5": float((rank <= 5).float().mean()),
        "mrr": float((1.0 / rank.float()).mean()),
    }


# ---------------------------------------------------------------------------------------------------------------
# A classification head on any encoder


class SequenceClassifier(nn.Module):
    """An encoder, a pooling strategy and a linear layer: logits for one text or a text pair.

    With ``pooling="pooler"`` it computes what :class:`minibert.model.EncoderForSequenceClassification` computes.
    """

    def __init__(self, encoder: Encoder, num_labels: int = 2, pooling: str = "cls", dropout: float | None = None):
        super().__init__()
        _check_strategy(pooling)
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        self.encoder, self.pooling, self.num_labels = encoder, pooling, num_labels
        self.config = encoder.config
        self.dropout = nn.Dropout(encoder.config.hidden_dropout if dropout is None else dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=encoder.config.initializer_range)
        nn.init.zeros_(self.classifier.bias)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        token_type_ids: torch.Tensor | None = None,  # (B, T)
    ) -> torch.Tensor:
        out = self.encoder(
            input_ids, attention_mask, token_type_ids, output_hidden_states=needs_hidden_states(self.pooling)
        )
        return self.classifier(self.dropout(pool(out, attention_mask, self.pooling)))  # (B, num_labels)

    def head_parameters(self) -> list[nn.Parameter]:
        """The freshly initialised parameters (they want a larger learning rate than the pretrained ones)."""
        head = list(self.classifier.parameters())
        if self.pooling == "pooler" and self.encoder.pooler is not None:
            head += list(self.encoder.pooler.parameters())
        return head


FREEZE_MODES = ("probe", "full")


def set_trainable(model: SequenceClassifier, mode: str | int = "full", freeze_embeddings: bool = False) -> int:
    """What fine-tuning updates: 'probe' (the head only), 'full' (everything), or an int n (the head and the top n
    blocks). ``freeze_embeddings`` keeps the embedding tables fixed in any mode: on a few hundred texts they would
    barely move, yet the token table is half of a small BERT's parameters, so freezing it halves the optimizer's work
    and memory. Returns the number of trainable parameters.
    """
    if not (mode in FREEZE_MODES or (isinstance(mode, int) and not isinstance(mode, bool) and mode >= 0)):
        raise ValueError(f"mode must be one of {FREEZE_MODES} or a number of top blocks to train, got {mode!r}")
    enc = model.encoder
    for p in enc.parameters():
        p.requires_grad_(mode == "full")
    if isinstance(mode, int):
        if mode > len(enc.layers):
            raise ValueError(f"the encoder has {len(enc.layers)} blocks; cannot train the top {mode}")
        top = list(enc.layers)[len(enc.layers) - mode :] + [enc.final_norm]
        for p in (q for m in top for q in m.parameters()):
            p.requires_grad_(True)
    if freeze_embeddings:
        for p in enc.embeddings.parameters():
            p.requires_grad_(False)
    for p in model.head_parameters():
        p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def encoder_frozen(model: SequenceClassifier) -> bool:
    return not any(p.requires_grad for p in model.encoder.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Training with early stopping


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 10  # the most epochs; early stopping usually ends sooner
    batch_size: int = 16
    lr: float = 3e-5  # pretrained weights: small steps keep what pretraining learnt
    head_lr: float = 1e-3  # the new head starts from scratch
    weight_decay: float = 0.01  # on matrices only, not on biases and norms
    warmup: float = 0.1  # fraction of the steps spent ramping the learning rate up
    max_grad_norm: float = 1.0
    patience: int = 2  # epochs without a better validation loss before stopping
    seed: int = 0


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, and val_loss, val_accuracy
    best_epoch: int = 0  # 1-based; the weights of this epoch are the model's at the end
    stopped_early: bool = False


def _optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    head_ids = {id(p) for p in model.head_parameters()} if hasattr(model, "head_parameters") else set()
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        lr = config.head_lr if id(p) in head_ids else config.lr
        wd = config.weight_decay if p.dim() >= 2 else 0.0
        groups.setdefault((lr, wd), []).append(p)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen (see set_trainable)")
    device = next(iter(groups.values()))[0].device
    fused = device.type in ("cpu", "cuda")  # one kernel for all parameters: 4x faster than the loop on a CPU
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()], fused=fused
    )


def _warmup_linear(total: int, warmup: float) -> Callable[[int], float]:
    w = max(1, int(round(total * warmup)))
    return lambda step: min((step + 1) / w, max(0.0, (total - step) / max(1, total - w)))


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, batch_size: int = 64) -> torch.Tensor:
    """(N, num_labels) logits on the CPU, in the order of ``data``."""
    if len(data) == 0:
        raise ValueError("nothing to predict: the data holds no texts")
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    try:
        order = length_batches(data.lengths, batch_size)
        logits = torch.cat([model(**data.batch(idx, device)).float().cpu() for idx in order])
        return logits[torch.argsort(torch.cat(order))]
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, data: Encoded, batch_size: int = 64) -> dict:
    """Loss, accuracy and F1 of ``model`` on labelled ``data``."""
    if data.labels is None:
        raise ValueError("evaluate needs labelled data (Encoded.labels)")
    logits = predict(model, data, batch_size)
    pred = logits.argmax(-1)
    average = "binary" if logits.size(-1) == 2 else "macro"
    return {
        "loss": float(F.cross_entropy(logits, data.labels)),
        "accuracy": accuracy(pred, data.labels),
        "f1": f1_score(pred, data.labels, average=average),
    }


def fit_classifier(
    model: SequenceClassifier,
    train: Encoded,
    val: Encoded | None = None,
    config: FinetuneConfig = FinetuneConfig(),
    log: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train on ``train``; with ``val``, stop when its loss has not improved for ``patience`` epochs and keep the
    best epoch's weights. Seeds torch's global generator with ``config.seed`` (dropout) so a run repeats exactly.
    """
    if train.labels is None:
        raise ValueError("the training data has no labels (Encoded.labels)")
    if int(train.labels.max()) >= model.num_labels or int(train.labels.min()) < 0:
        raise ValueError(f"labels must lie in 0..{model.num_labels - 1}, got {train.labels.unique().tolist()}")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    device = next(model.parameters()).device
    opt = _optimizer(model, config)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_linear(steps_per_epoch * config.epochs, config.warmup))
    params = [p for g in opt.param_groups for p in g["params"]]
    frozen = encoder_frozen(model)
    result, best_loss, best_state, bad = FitResult(), float("inf"), None, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        if frozen:
            model.encoder.eval()  # a frozen encoder gives the same features every epoch: no dropout noise
        total, seen = 0.0, 0
        for idx in shuffled_batches(train.lengths, config.batch_size, gen):
            logits = model(**train.batch(idx, device))
            loss = F.cross_entropy(logits, train.labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            sched.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        row = {"epoch": epoch, "train_loss": total / seen}
        if val is not None:
            scores = evaluate(model, val)
            row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            if scores["loss"] < best_loss - 1e-6:
                best_loss, bad, result.best_epoch = scores["loss"], 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        result.history.append(row)
        if log is not None:
            log(row)
        if val is not None and bad >= config.patience:
            result.stopped_early = epoch < config.epochs
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.history)
    model.eval()
    return result


# ---------------------------------------------------------------------------------------------------------------
# Metrics, with their spread over folds


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
    make_model: Callable[[], SequenceClassifier],
    data: Encoded,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    config: FinetuneConfig = FinetuneConfig(),
    mode: str | int = "full",
    val_fraction: float = 0.15,
    freeze_embeddings: bool = False,
) -> tuple[np.ndarray, dict]:
    """One fold of fine-tuning: a fresh model, a validation part of the training fold for early stopping, then
    predictions on the untouched test fold.
    """
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


__all__ = [
    "POOLINGS",
    "TOKEN_POOLINGS",
    "CVResult",
    "Encoded",
    "FitResult",
    "LogisticRegression",
    "SequenceClassifier",
    "FinetuneConfig",
    "accuracy",
    "cls_pooling",
    "cosine_search",
    "cosine_similarity_matrix",
    "cross_validate",
    "embed",
    "encode",
    "evaluate",
    "f1_score",
    "shuffled_batches",
    "finetune_fold",
    "fit_classifier",
    "kfold",
    "layer_mix",
    "max_pooling",
    "mean_pooling",
    "mean_std",
    "needs_hidden_states",
    "normalize",
    "pool",
    "predict",
    "probe_fold",
    "retrieval_scores",
    "set_trainable",
    "standardize",
    "train_val_split",
    "weighted_mean_pooling",
]
