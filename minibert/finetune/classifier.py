"""A classification head on any encoder, trained with early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from ..encoder.model import Encoder, init_weights
from ..pretrain.optim import can_fuse, linear_warmup_decay, lr_scheduler, param_groups
from .data import Encoded, length_batches, shuffled_batches
from .metrics import accuracy, f1_score
from .pooling import _check_strategy, needs_hidden_states, pool


class EncoderForSequenceClassification(nn.Module):
    """An encoder, a pooling and a linear layer: logits for one text or a text pair.

    By default BERT's sentence classifier: dropout and a linear layer on the pooled output, tanh(W h_[CLS] + b), or
    on the [CLS] vector where the encoder has no pooler (ModernBERT, EuroBERT). Any pooling of :data:`POOLINGS`
    works too (``pooling="mean"`` is what sentence embeddings use). Give an :class:`Encoder` (pretrained weights)
    or a config (a fresh one); the parameter names are transformers' ``BertForSequenceClassification``'s.
    """

    def __init__(
        self,
        encoder: Encoder | EncoderConfig,
        num_labels: int = 2,
        pooling: str | None = None,  # None: the pooler when there is one, else [CLS]
        dropout: float | None = None,  # None: the config's hidden_dropout
    ) -> None:
        super().__init__()
        encoder = encoder if isinstance(encoder, Encoder) else Encoder(encoder)
        pooling = pooling or ("pooler" if encoder.pooler is not None else "cls")
        _check_strategy(pooling)
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        self.encoder, self.pooling, self.num_labels = encoder, pooling, num_labels
        self.config = encoder.config
        self.dropout = nn.Dropout(encoder.config.hidden_dropout if dropout is None else dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        init_weights(self.classifier, encoder.config)

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


def set_trainable(
    model: EncoderForSequenceClassification, mode: str | int = "full", freeze_embeddings: bool = False
) -> int:
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


def encoder_frozen(model: EncoderForSequenceClassification) -> bool:
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
    step_losses: list[float] = field(default_factory=list)  # the training loss of every step, in order
    best_epoch: int = 0  # 1-based; the weights of this epoch are the model's at the end
    stopped_early: bool = False


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
    model: EncoderForSequenceClassification,
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
    groups = param_groups(model, config.weight_decay, head=model.head_parameters(), head_lr=config.head_lr)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen (see set_trainable)")
    opt = torch.optim.AdamW(groups, lr=config.lr, fused=can_fuse(model))
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    sched = lr_scheduler(opt, linear_warmup_decay(config.warmup), steps_per_epoch * config.epochs)
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
            result.step_losses.append(float(loss.detach()))
            total, seen = total + result.step_losses[-1] * len(idx), seen + len(idx)
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
