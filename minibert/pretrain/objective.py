"""The pretraining objective: the MLM loss at the masked positions (and NSP), evaluation on held-out batches, and
the MLM bias started at the unigram distribution.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..encoder.model import EncoderForPreTraining
from .instances import NSP_RANDOM
from .masking import IGNORE_INDEX


def pretraining_sums(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Forward one batch and return (MLM loss summed over masked tokens, NSP loss summed over sequences, counts).

    The vocabulary is scored only at the masked positions: ``masked_positions`` hands the MLM head an (N, C)
    matrix instead of (B, T, C), which skips most of the step's work (the decoder onto the vocabulary is the
    largest matrix multiply in a small BERT). Sums, not means, so the caller can normalise by the whole global
    batch: micro-batches and data-parallel ranks then add up to exactly the single-batch gradient.
    """
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX  # (B, T)
    out = model(
        batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
        masked_positions=masked,
    )
    targets = labels[masked]  # (N,)
    logits = out.mlm_logits.float()  # (N, V)
    mlm = F.cross_entropy(logits, targets, reduction="sum")
    stats = {"mlm_correct": (logits.argmax(-1) == targets).sum(), "masked": masked.sum()}
    if out.nsp_logits is not None:
        nsp_logits = out.nsp_logits.float()  # (B, 2)
        nsp = F.cross_entropy(nsp_logits, batch["next_sentence_label"], reduction="sum")
        stats["nsp_correct"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum()
    else:
        nsp = logits.new_zeros(())
        stats["nsp_correct"] = torch.zeros((), dtype=torch.long, device=logits.device)
    return mlm, nsp, stats


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> dict[str, float]:
    """Held-out MLM loss and accuracy (at masked positions); NSP loss and accuracy, and ``nsp_majority``: the
    accuracy of always answering the commoner label of these pairs, the baseline NSP accuracy must beat."""
    sums = _evaluate_sums(model, batches, device, precision)
    return _eval_metrics(sums, has_nsp=getattr(model.config, "nsp", True))


def _evaluate_sums(model, batches, device, precision) -> torch.Tensor:
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(7, dtype=torch.float64)  # mlm loss, mlm correct, masked, nsp loss, nsp correct, sequences,
    # and pairs labelled random-next
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            with _autocast(device, precision):
                mlm, nsp, s = pretraining_sums(model, batch)
            sums += torch.tensor(
                [mlm.item(), s["mlm_correct"].item(), s["masked"].item(), nsp.item(), s["nsp_correct"].item(),
                 batch["input_ids"].size(0), (batch["next_sentence_label"] == NSP_RANDOM).sum().item()],
                dtype=torch.float64,
            )  # fmt: skip
    finally:
        model.train(was_training)
    return sums


def _eval_metrics(sums: torch.Tensor, has_nsp: bool) -> dict[str, float]:
    mlm_loss, mlm_correct, masked, nsp_loss, nsp_correct, seqs, random_next = sums.tolist()
    out = {"mlm_loss": mlm_loss / max(masked, 1), "mlm_acc": mlm_correct / max(masked, 1)}
    if has_nsp:
        majority = max(random_next, seqs - random_next) / max(seqs, 1)
        out |= {"nsp_loss": nsp_loss / max(seqs, 1), "nsp_acc": nsp_correct / max(seqs, 1), "nsp_majority": majority}
    return out


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def token_counts(documents, vocab_size: int) -> torch.Tensor:
    """(V,) how often each token id occurs in tokenized documents (lists of sentences of ids)."""
    ids = torch.tensor([t for doc in documents for sentence in doc for t in sentence], dtype=torch.long)
    return torch.bincount(ids, minlength=vocab_size)


@torch.no_grad()
def init_mlm_bias(model: EncoderForPreTraining, counts: torch.Tensor, smoothing: float = 0.5) -> None:
    """Start the MLM decoder's bias at the log frequency of each token (add-``smoothing`` counts).

    A fresh model predicts every token with probability 1/V (loss ln V, 10.3 for BERT's vocabulary); with this bias
    it starts at the unigram distribution, where it would otherwise spend its first few hundred steps getting to
    (Adam moves each bias by about one learning rate per step). Special tokens never appear as targets.
    """
    bias = model.mlm_head.decoder.bias
    if bias is None:
        raise ValueError("this model's MLM decoder has no bias (decoder_bias=False)")
    if counts.numel() != bias.numel():
        raise ValueError(f"counts cover {counts.numel()} tokens, the decoder {bias.numel()}")
    probs = (counts.double() + smoothing) / (counts.sum() + smoothing * counts.numel())
    bias.copy_((probs.log() - probs.log().mean()).to(bias.dtype))


def perplexity(mlm_loss: float) -> float:
    return math.exp(min(mlm_loss, 50.0))
