"""Static pictures of attention: they show on GitHub, in PDFs and on slides, where the interactive views do not.

Each draws what the architecture allows too: keys a local layer's queries cannot see are greyed out, and heads
that share a key/value head are labelled with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb

from .data import HEAD_COLORS, AttentionData, prepare


def _shade_hidden(ax, allowed: torch.Tensor | None) -> None:
    """Grey out the keys a query may not attend to (a local layer's outside of the window)."""
    if allowed is None or bool(allowed.all()):
        return
    hidden = np.ma.masked_where(allowed.numpy(), np.ones(allowed.shape))
    ax.imshow(hidden, cmap="Greys", vmin=0, vmax=2.5, alpha=0.6, interpolation="nearest")


def plot_attention(
    probs: torch.Tensor,
    tokens: Sequence[str],
    ax=None,
    title: str | None = None,
    cmap: str = "Blues",
    allowed: torch.Tensor | None = None,
    vmax: float = 1.0,
):
    """One head's (T, T) probabilities as a heatmap: rows are queries (who looks), columns keys (looked at).

    ``allowed`` (T, T) bool greys out the keys a query may not see (a local layer's window).
    """
    probs = probs.detach().float().cpu()
    if probs.dim() != 2 or probs.shape != (len(tokens), len(tokens)):
        raise ValueError(
            f"expected ({len(tokens)}, {len(tokens)}) probabilities for {len(tokens)} tokens, got {tuple(probs.shape)}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(0.3 * len(tokens) + 2, 0.3 * len(tokens) + 1.5))
    ax.imshow(probs.numpy(), cmap=cmap, vmin=0, vmax=vmax)
    _shade_hidden(ax, allowed)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    return ax


def data_grid(data: AttentionData, cell: float = 1.3, cmap: str = "Blues"):
    """The model view as a picture: a heatmap per layer (row) and head (column) of :class:`AttentionData`."""
    L, H = len(data.layers), len(data.heads)
    fig, axes = plt.subplots(L, H, figsize=(cell * H + 1.5, cell * L + 1.5), squeeze=False)
    T = len(data.tokens)
    fontsize = max(3, min(7, int(150 / max(T, 1))))
    for r in range(L):
        allowed = data.allowed(r)
        for c in range(H):
            ax = axes[r][c]
            ax.imshow(data.attentions[r, c].numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            _shade_hidden(ax, allowed)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(data.head_label(c), fontsize=8, color=HEAD_COLORS[c % 10] if data.shares_kv else "black")
            if c == 0:
                ax.set_ylabel(data.layer_label(r), fontsize=8)
    corner = axes[L - 1][0]  # queries down the side, keys along the bottom
    corner.set_yticks(range(T), data.tokens, fontsize=fontsize)
    corner.set_xticks(range(T), data.tokens, rotation=90, fontsize=fontsize)
    if data.notes:
        fig.suptitle("Showing " + data.note, fontsize=8)
    fig.tight_layout()
    return fig


def attention_grid(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    tokens: Sequence[str],
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 32,
    cell: float = 1.3,
    cmap: str = "Blues",
    windows: Sequence[int | None] | None = None,
    kv_heads: int | Sequence[int] | None = None,
):
    """A matplotlib grid of heatmaps, one row per layer and one column per head; returns the figure.

    Token labels are drawn on the bottom-left heatmap only, so the grid stays readable. ``windows`` and ``kv_heads``
    (see :func:`prepare`) grey out what local layers cannot see and label the heads' shared key/value heads.
    """
    data = prepare(attentions, tokens, None, layers, heads, max_tokens=max_tokens, max_values=10**9, windows=windows,
                   kv_heads=kv_heads)  # fmt: skip
    return data_grid(data, cell, cmap)


def head_view_figure(data: AttentionData, layer_index: int = 0, heads: Sequence[int] | None = None):
    """The head view as a picture: for the ``layer_index``-th layer shown, a line from each query (left) to each
    key (right) per head, in the head's colour, as opaque as the probability."""
    T = len(data.tokens)
    chosen = range(len(data.heads)) if heads is None else [data.heads.index(h) for h in heads]
    fig, ax = plt.subplots(figsize=(4.8, 0.26 * T + 1.4))
    segments, colors = [], []
    for c in chosen:
        rgb = to_rgb(HEAD_COLORS[c % 10])
        probs = data.attentions[layer_index, c]
        for i in range(T):
            for j in range(T):
                p = float(probs[i, j])
                if p > 0.02:  # fainter lines would not show, and would make big files
                    segments.append([(0.0, i), (1.0, j)])
                    colors.append((*rgb, min(1.0, p)))
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.2))
    for i, t in enumerate(data.tokens):
        ax.text(-0.03, i, t, ha="right", va="center", fontsize=8)
        ax.text(1.03, i, t, ha="left", va="center", fontsize=8)
    if data.sentence_b_start is not None:
        ax.axhline(data.sentence_b_start - 0.5, color="#bbb", lw=0.8, ls=":")
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(T - 0.5, -1.5)
    ax.axis("off")
    for k, c in enumerate(chosen):  # the head squares, as in the interactive view
        x = -0.6 + 0.09 * k + (0.03 * data.kv_groups[c] if data.shares_kv else 0)
        ax.add_patch(plt.Rectangle((x, -1.45), 0.07, 0.7, color=HEAD_COLORS[c % 10]))
    title = f"{data.layer_label(layer_index)}: {len(list(chosen))} heads"
    if data.shares_kv:
        title += " (gaps: heads sharing a key/value head)"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
