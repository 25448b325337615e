"""Pooling: (B, T, C) token vectors and a (B, T) mask -> (B, C), one vector per text."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..encoder.model import EncoderOutput


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
