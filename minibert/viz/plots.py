"""Static pictures of attention: they show on GitHub and in PDFs too."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .views import prepare


def plot_attention(probs: torch.Tensor, tokens: Sequence[str], ax=None, title: str | None = None, cmap: str = "Blues"):
    """One head's (T, T) probabilities as a heatmap: rows are queries (who looks), columns keys (looked at)."""
    import matplotlib.pyplot as plt

    probs = probs.detach().float().cpu()
    if probs.dim() != 2 or probs.shape != (len(tokens), len(tokens)):
        raise ValueError(
            f"expected ({len(tokens)}, {len(tokens)}) probabilities for {len(tokens)} tokens, got {tuple(probs.shape)}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(0.3 * len(tokens) + 2, 0.3 * len(tokens) + 1.5))
    ax.imshow(probs.numpy(), cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    return ax


def attention_grid(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    tokens: Sequence[str],
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 32,
    cell: float = 1.3,
    cmap: str = "Blues",
):
    """A matplotlib grid of heatmaps, one row per layer and one column per head; returns the figure.

    Token labels are drawn on the bottom-left heatmap only, so the grid stays readable.
    """
    import matplotlib.pyplot as plt

    data = prepare(attentions, tokens, None, layers, heads, max_tokens=max_tokens, max_values=10**9)
    L, H = len(data.layers), len(data.heads)
    fig, axes = plt.subplots(L, H, figsize=(cell * H + 1.5, cell * L + 1.5), squeeze=False)
    T = len(data.tokens)
    fontsize = max(3, min(7, int(150 / max(T, 1))))
    for r in range(L):
        for c in range(H):
            ax = axes[r][c]
            ax.imshow(data.attentions[r, c].numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"head {data.heads[c]}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"layer {data.layers[r]}", fontsize=8)
    corner = axes[L - 1][0]  # queries down the side, keys along the bottom
    corner.set_yticks(range(T), data.tokens, fontsize=fontsize)
    corner.set_xticks(range(T), data.tokens, rotation=90, fontsize=fontsize)
    if data.notes:
        fig.suptitle("Showing " + data.note, fontsize=8)
    fig.tight_layout()
    return fig
