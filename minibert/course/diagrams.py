"""Diagrams the chapters draw from code, so that they stay true to the code they describe.

- :func:`norm_placement`: a post-LN block (BERT) beside a pre-LN block (ModernBERT, EuroBERT), read off
  :class:`minibert.encoder.EncoderBlock`'s two branches (chapters 05 and 10);
- :func:`attention_directions`: which words a word's representation can draw on in ELMo, GPT and BERT
  (chapters 02 and 04).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..config import EncoderConfig, preset

_COLOURS = {"norm": "#f6d7a7", "attention": "#b9d7ea", "feed-forward": "#c7e9c0", "add": "#eeeeee", "io": "#ffffff"}


def block_steps(config: EncoderConfig) -> list[str]:
    """The order of a block's operations for ``config`` (the same branches as ``EncoderBlock.forward``)."""
    if config.norm_position == "pre":
        return ["x", "norm", "attention", "add", "norm", "feed-forward", "add", "output"]
    return ["x", "attention", "add", "norm", "feed-forward", "add", "norm", "output"]


def _box(ax, x: float, y: float, label: str, kind: str) -> None:
    ax.add_patch(FancyBboxPatch((x - 0.9, y - 0.28), 1.8, 0.56, boxstyle="round,pad=0.04",
                                facecolor=_COLOURS[kind], edgecolor="#555555", linewidth=1))  # fmt: skip
    ax.text(x, y, label, ha="center", va="center", fontsize=9)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], curved: bool = False) -> None:
    style = "arc3,rad=0.5" if curved else "arc3"
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, connectionstyle=style,
                                 color="#333333", linewidth=1))  # fmt: skip


def _draw_block(ax, steps: Sequence[str], title: str, norm_name: str) -> None:
    """One block bottom to top; each 'add' takes the residual from the input of the sub-layer it closes."""
    ys = [0.8 * i for i in range(len(steps))]
    labels = {"x": "input x", "output": "output", "norm": norm_name, "attention": "multi-head attention",
              "feed-forward": "feed-forward", "add": "+ (residual)"}  # fmt: skip
    for y, step in zip(ys, steps):
        _box(ax, 0.0, y, labels[step], "io" if step in ("x", "output") else step)
    for y0, y1 in zip(ys, ys[1:]):
        _arrow(ax, (0.0, y0 + 0.3), (0.0, y1 - 0.3))
    # residual: from the stream before each sub-layer (after the previous add or norm) to its add
    stream = 0  # index of the residual stream's last value
    post_norm = steps[1] != "norm"
    for i, step in enumerate(steps):
        if step == "add":
            _arrow(ax, (0.9, ys[stream]), (0.9, ys[i]), curved=True)
            stream = i
        elif step == "norm" and post_norm:  # post-LN: the stream continues after the norm, pre-LN branches off
            stream = i
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-1.4, 2.0)
    ax.set_ylim(-0.6, ys[-1] + 0.6)
    ax.axis("off")


def norm_placement(post: EncoderConfig | None = None, pre: EncoderConfig | None = None):
    """Post-LN (BERT) beside pre-LN (ModernBERT): where the norm sits decides what the residual stream carries."""
    post = post or preset("bert-base")
    pre = pre or preset("modernbert-base")
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 5.2))
    _draw_block(axes[0], block_steps(post), "post-LN (BERT): x = norm(x + f(x))", _norm_name(post))
    _draw_block(axes[1], block_steps(pre), "pre-LN (ModernBERT): x = x + f(norm(x))", _norm_name(pre))
    fig.tight_layout()
    return fig


def _norm_name(config: EncoderConfig) -> str:
    return "RMSNorm" if config.norm == "rmsnorm" else "LayerNorm"


def visible_context(model: str, position: int, length: int) -> list[list[int]]:
    """For each source of a word's representation, the positions it can see.

    ELMo: a left-to-right and a right-to-left LSTM, concatenated only at the top (each half sees one side);
    GPT: causal attention (the left side and the word itself); BERT: attention over the whole sentence.
    """
    left, right = list(range(position + 1)), list(range(position, length))
    if model == "ELMo":
        return [left, right]
    if model == "GPT":
        return [left]
    if model == "BERT":
        return [list(range(length))]
    raise ValueError(f"unknown model {model!r}; use 'ELMo', 'GPT' or 'BERT'")


def attention_directions(words: Sequence[str] = ("the", "bank", "of", "the", "river"), position: int = 1):
    """What ``words[position]``'s representation can draw on in ELMo, GPT and BERT, one panel each."""
    models = ("ELMo", "GPT", "BERT")
    captions = {
        "ELMo": "a left-to-right LSTM (blue) and a right-to-left one (red), joined only at the top",
        "GPT": "causal: the words to the left",
        "BERT": "every word, in every layer",
    }
    fig, axes = plt.subplots(len(models), 1, figsize=(7, 5.4))
    xs = range(len(words))
    for ax, model in zip(axes, models):
        sources = visible_context(model, position, len(words))
        for x, w in zip(xs, words):
            weight = "bold" if x == position else "normal"
            ax.text(x, 0, w, ha="center", va="center", fontsize=11, fontweight=weight,
                    bbox=dict(boxstyle="round", facecolor="#fff2cc" if x == position else "white"))  # fmt: skip
        colours = ("#1f77b4", "#d62728")
        for k, seen in enumerate(sources):
            for x in seen:
                if x == position:
                    continue
                rad = -0.4 if x < position else 0.4  # every arc above the words
                ax.add_patch(FancyArrowPatch((x, 0.25), (position, 0.25), arrowstyle="-|>", mutation_scale=9,
                                             connectionstyle=f"arc3,rad={rad}", color=colours[k % 2]))  # fmt: skip
        ax.set_title(f"{model}: {captions[model]}", fontsize=10, loc="left")
        ax.set_xlim(-0.6, len(words) - 0.4)
        ax.set_ylim(-0.5, 1.3)
        ax.axis("off")
    fig.tight_layout()
    return fig
