"""What heads attend to: the share of each head's attention that goes to [CLS], [SEP], the previous, same or next
token, or the other occurrences of the same word; how spread out it is (entropy); and from both, each head's kind,
so that the heads of two models can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from .data import _as_tensor
from .views import model_attentions

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


# ---------------------------------------------------------------------------------------------------------------
# Each head's kind, over many sentences, and models compared

HEAD_CLASSES = ("previous", "next", "[CLS]", "[SEP]", "same word", "self", "broad", "other")
CLASS_COLORS = ("#1f77b4", "#17becf", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#dddddd", "#8c8c8c")


def head_entropy(attentions: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """(L, H): each head's attention entropy over the keys, divided by log T (0: one key; 1: spread evenly over
    all of them), averaged over the queries."""
    attn = _as_tensor(attentions)  # (L, H, T, T)
    T = attn.size(-1)
    if T < 2:
        return attn.new_zeros(attn.shape[:2])
    ent = -(attn * attn.clamp_min(1e-12).log()).sum(-1)  # (L, H, T)
    return ent.mean(-1) / math.log(T)


def classify_heads(
    patterns: dict[str, torch.Tensor], entropy: torch.Tensor, threshold: float = 0.5, broad: float = 0.7
) -> list[list[str]]:
    """Each head's kind, [layer][head], one of :data:`HEAD_CLASSES`.

    A head is of the pattern (:func:`head_patterns`) that takes the largest share of its attention when that
    share is at least ``threshold``; otherwise "broad" when its normalised entropy (:func:`head_entropy`) is at
    least ``broad`` (it spreads its attention over many tokens), else "other" (focused, but on something the
    simple rules do not name: content).
    """
    names = [n for n in HEAD_CLASSES if n in patterns]
    stacked = torch.stack([patterns[n] for n in names])  # (P, L, H)
    best, which = stacked.max(0)
    L, H = entropy.shape
    return [
        [
            names[which[l, h]] if best[l, h] >= threshold else "broad" if entropy[l, h] >= broad else "other"
            for h in range(H)
        ]
        for l in range(L)
    ]


@dataclass
class HeadSurvey:
    """Head patterns and entropies of one model, averaged over many texts."""

    patterns: dict[str, torch.Tensor]  # pattern -> (L, H)
    entropy: torch.Tensor  # (L, H)
    texts: int

    def classes(self, threshold: float = 0.5, broad: float = 0.7) -> list[list[str]]:
        return classify_heads(self.patterns, self.entropy, threshold, broad)

    def counts(self, threshold: float = 0.5, broad: float = 0.7) -> dict[str, int]:
        """How many heads of each kind."""
        found = [c for row in self.classes(threshold, broad) for c in row]
        return {c: found.count(c) for c in HEAD_CLASSES}

    def table(self, threshold: float = 0.5, broad: float = 0.7) -> str:
        """One line per layer: each head's kind and its share (or entropy for broad/other)."""
        lines = []
        for l, row in enumerate(self.classes(threshold, broad)):
            cells = []
            for h, kind in enumerate(row):
                value = self.entropy[l, h] if kind in ("broad", "other") else self.patterns[kind][l, h]
                cells.append(f"{kind} {float(value):.2f}")
            lines.append(f"layer {l}: " + " | ".join(cells))
        return "\n".join(lines)


@torch.no_grad()
def survey_heads(model, tokenizer, texts: Sequence[str | tuple[str, str]], max_length: int = 128,
                 batch_size: int = 16) -> HeadSurvey:  # fmt: skip
    """:func:`head_patterns` and :func:`head_entropy` of ``model`` averaged over ``texts`` (strings or sentence
    pairs), run in padded batches: each text's attention is the top-left corner of its padded map."""
    texts = list(texts)
    if not texts:
        raise ValueError("give at least one text (or sentence pair) to survey the heads on")
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        pairs = [t[1] for t in chunk] if isinstance(chunk[0], tuple) else None
        firsts = [t[0] if isinstance(t, tuple) else t for t in chunk]
        batch = tokenizer(firsts, pairs, truncation=True, max_length=max_length, return_tensors="pt")
        batch = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in batch}
        attentions = model_attentions(model, batch)  # per layer (B, H, T, T)
        for i, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            attn = [a[i : i + 1, :, :n, :n] for a in attentions]
            found = head_patterns(attn, tokenizer.convert_ids_to_tokens(batch["input_ids"][i, :n].tolist()))
            found["entropy"] = head_entropy(attn)
            for name, value in found.items():
                totals[name] = totals.get(name, 0) + value / len(texts)
    entropy = totals.pop("entropy")
    return HeadSurvey(totals, entropy, len(texts))


def plot_head_classes(classes: list[list[str]], ax=None, title: str | None = None):
    """A grid of heads (columns) by layers (rows), each coloured by its kind, with a legend of the kinds found."""
    L, H = len(classes), len(classes[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * H + 2.5, 0.45 * L + 1.2))
    codes = torch.tensor([[HEAD_CLASSES.index(c) for c in row] for row in classes])
    ax.imshow(codes.numpy(), cmap=ListedColormap(CLASS_COLORS), vmin=-0.5, vmax=len(HEAD_CLASSES) - 0.5)
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set(xlabel="head", ylabel="layer")
    ax.set_xticks([x - 0.5 for x in range(1, H)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, L)], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    found = [c for c in HEAD_CLASSES if any(c in row for row in classes)]
    ax.legend(
        handles=[Patch(color=CLASS_COLORS[HEAD_CLASSES.index(c)], label=c) for c in found],
        loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False,
    )  # fmt: skip
    if title:
        ax.set_title(title, fontsize=10)
    return ax
