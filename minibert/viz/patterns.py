"""What heads attend to: the share of each head's attention that goes to [CLS], [SEP], the previous, same or next
token, or the other pieces of the same word.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .views import _as_tensor

PATTERNS = ("[CLS]", "[SEP]", "previous", "self", "next", "same word")


def head_patterns(attentions: Sequence[torch.Tensor] | torch.Tensor, tokens: Sequence[str]) -> dict[str, torch.Tensor]:
    """How much each head (L, H) attends, on average over the queries, to a few simple targets.

    ``[CLS]``/``[SEP]``: total probability on those tokens; ``previous``/``self``/``next``: on the token at offset
    -1/0/+1; ``same word``: on the other occurrences of the query's own token (over queries whose token repeats;
    zero when none does). Clark et al. (2019), "What does BERT look at?", found heads of each kind in BERT.
    """
    attn = _as_tensor(attentions)  # (L, H, T, T)
    T = attn.size(-1)
    if len(tokens) != T:
        raise ValueError(f"{len(tokens)} tokens for attention over {T} positions")
    toks = list(tokens)
    out: dict[str, torch.Tensor] = {}
    for special in ("[CLS]", "[SEP]"):
        cols = torch.tensor([t == special for t in toks])
        out[special] = attn[..., cols].sum(-1).mean(-1)  # (L, H)
    idx = torch.arange(T)
    out["previous"] = attn[..., idx[1:], idx[1:] - 1].mean(-1) if T > 1 else attn.new_zeros(attn.shape[:2])
    out["self"] = attn[..., idx, idx].mean(-1)
    out["next"] = attn[..., idx[:-1], idx[:-1] + 1].mean(-1) if T > 1 else attn.new_zeros(attn.shape[:2])
    same = torch.tensor([[a == b and i != j for j, b in enumerate(toks)] for i, a in enumerate(toks)])  # (T, T)
    rows = same.any(-1)
    if rows.any():
        out["same word"] = (attn * same).sum(-1)[..., rows].mean(-1)
    else:
        out["same word"] = attn.new_zeros(attn.shape[:2])
    return out


def top_heads(patterns: dict[str, torch.Tensor], k: int = 3) -> dict[str, list[tuple[int, int, float]]]:
    """The k (layer, head, score) with the highest score for each pattern of :func:`head_patterns`."""
    result = {}
    for name, scores in patterns.items():
        H = scores.size(1)
        vals, flat = scores.flatten().topk(min(k, scores.numel()))
        result[name] = [(int(i) // H, int(i) % H, round(float(v), 3)) for v, i in zip(vals, flat)]
    return result
