"""Seeing attention: bertviz's head and model views of a model reading a text, offline and on first run.

``attention_views(model, tokenizer, text, pair)`` runs the model, keeps what a browser opens comfortably
(:func:`prepare`, in ``data.py``) and builds both pages (``pages.py``). Big models make big pages (every layer x
head x token x token probability is embedded), so the views keep to a budget: at most ``max_tokens`` tokens,
probabilities rounded to ``decimals``, and evenly spaced layers (then heads) dropped when the rest would not fit
``max_values``; each view says what it left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..encoder.model import Encoder
from .data import AttentionData, _as_tensor, _spread, prepare  # noqa: F401  (the names views.py has always had)
from .pages import (  # noqa: F401
    PICTURE_SUFFIXES,
    AttentionPage,
    _page,
    _page_parts,
    display_with_picture,
    head_view_page,
    model_view_page,
)


class AttentionViews:
    """The head view and the model view of one input; in a notebook it shows both, each with its picture."""

    def __init__(self, data: AttentionData, decimals: int = 2) -> None:
        self.data = data
        self.decimals = decimals
        self.head = head_view_page(data, decimals)
        self.model = model_view_page(data, decimals)

    @classmethod
    def from_attentions(
        cls,
        attentions: Sequence[torch.Tensor] | torch.Tensor,
        tokens: Sequence[str],
        sentence_b_start: int | None = None,
        layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
        max_tokens: int = 64,
        max_values: int = 150_000,
        decimals: int = 2,
        windows: Sequence[int | None] | None = None,
        kv_heads: int | Sequence[int] | None = None,
    ) -> AttentionViews:
        """Views of attention probabilities you already have: per-layer (1, H, T, T) tensors and their tokens."""
        data = prepare(attentions, tokens, sentence_b_start, layers, heads, max_tokens, max_values, windows, kv_heads)
        return cls(data, decimals)

    def _repr_html_(self) -> str:
        return (
            "<div><b>Head view</b> (hover over a token; click the coloured squares to choose heads)</div>"
            + self.head.iframe()
            + "<div><b>Model view</b> (click a thumbnail to enlarge it)</div>"
            + self.model.iframe()
        )

    def _ipython_display_(self) -> None:
        self.show()

    def show(self, pictures: bool = True) -> None:
        """Display both views, each followed by a static picture of the same attention (``pictures=False``: none)."""
        display_with_picture(
            "<b>Head view</b> (hover over a token; click the coloured squares to choose heads)",
            self.head.iframe(),
            self.head.picture if pictures else None,
        )
        display_with_picture(
            "<b>Model view</b> (click a thumbnail to enlarge it)",
            self.model.iframe(),
            self.model.picture if pictures else None,
        )

    def save(self, path: str | Path, dpi: int = 150) -> Path:
        """Both views in one HTML file that opens offline; or, for a .png, .svg or .pdf name, the model view's
        picture (``views.head.save("head.svg")`` saves the head view's)."""
        path = Path(path)
        if path.suffix.lower() in PICTURE_SUFFIXES:
            return self.model.save(path, dpi)
        head_markup, head_script = _page_parts(self.head.html)
        model_markup, model_script = _page_parts(self.model.html)
        body = "<h3>Head view</h3>\n" + head_markup + "\n<h3>Model view</h3>\n" + model_markup
        path.write_text(_page(body, [head_script, model_script], "attention views"), encoding="utf-8")
        return path

    def __repr__(self) -> str:
        d = self.data
        return (
            f"<AttentionViews: {len(d.layers)} layers x {len(d.heads)} heads x {len(d.tokens)} tokens; "
            f"head view {len(self.head.html) / 1e3:.0f} kB, model view {len(self.model.html) / 1e3:.0f} kB>"
        )


# ---------------------------------------------------------------------------------------------------------------
# From a model and a tokenizer


def _encoder_of(model: nn.Module) -> nn.Module | None:
    if isinstance(model, Encoder):
        return model
    inner = getattr(model, "encoder", None)
    return inner if isinstance(inner, Encoder) else None


def attention_structure(model: nn.Module) -> tuple[list[int | None], int | None]:
    """(windows, kv_heads) of a minibert or transformers model: each layer's whole local window (None: global) and
    the number of key/value heads (None: one per head), as :func:`prepare` takes them."""
    encoder = _encoder_of(model)
    if encoder is not None:
        c = encoder.config
        windows = [None if c.is_global(i) else c.local_attention for i in range(c.num_layers)]
        return windows, (c.kv_heads if c.kv_heads != c.num_heads else None)
    c = getattr(model, "config", None)
    if c is None:
        return [], None
    n = getattr(c, "num_hidden_layers", 0)
    windows: list[int | None] = [None] * n
    window = getattr(c, "local_attention", None) or getattr(c, "sliding_window", None)
    kinds = getattr(c, "layer_types", None)
    if window and kinds:
        windows = [window if "sliding" in kind else None for kind in kinds]
    elif window and getattr(c, "global_attn_every_n_layers", None):
        every = c.global_attn_every_n_layers
        windows = [None if i % every == 0 else window for i in range(n)]
    kv = getattr(c, "num_key_value_heads", None)
    return windows, (kv if kv and kv != getattr(c, "num_attention_heads", kv) else None)


def encode_for_view(tokenizer, text: str, pair: str | None = None, max_tokens: int = 64) -> dict[str, torch.Tensor]:
    """One (text, pair) as a batch of one: input_ids, token_type_ids, attention_mask (truncated to max_tokens).

    Works with minibert's BertTokenizer and with transformers tokenizers (both take texts then pairs).
    """
    if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
        raise TypeError("text (and pair) must be strings: the views show one sequence (or one sentence pair)")
    batch = tokenizer([text], [pair] if pair is not None else None, truncation=True, max_length=max_tokens,
                      return_tensors="pt")  # fmt: skip
    return {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in batch}


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch the model takes: a model without segment embeddings (ModernBERT, EuroBERT) gets no token types."""
    encoder = _encoder_of(model)
    config = encoder.config if encoder is not None else getattr(model, "config", None)
    no_segments = getattr(config, "type_vocab_size", 1) == 0 or (
        encoder is None and getattr(config, "model_type", "") in ("modernbert", "eurobert")
    )
    return {k: v for k, v in batch.items() if not (k == "token_type_ids" and no_segments)}


@torch.no_grad()
def model_attentions(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Every layer's attention probabilities (1, H, T, T) for a batch of one, in eval mode (no dropout)."""
    encoder = _encoder_of(model)
    net = encoder if encoder is not None else model
    device = next(net.parameters()).device
    batch = {k: v.to(device) for k, v in model_inputs(model, batch).items()}
    was_training = net.training
    net.eval()
    try:
        if encoder is not None:
            out = encoder(
                batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"), output_attentions=True
            )
        else:  # a transformers model
            out = model(**batch, output_attentions=True)
    finally:
        net.train(was_training)
    attentions = getattr(out, "attentions", None)
    if attentions is None or any(a is None for a in attentions):
        raise ValueError(
            "the model returned no attention probabilities; for a transformers model load it with "
            "attn_implementation='eager'"
        )
    return tuple(a.float().cpu() for a in attentions)


def read_attention(
    model: nn.Module,
    tokenizer,
    text: str,
    pair: str | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 64,
    max_values: int = 150_000,
) -> AttentionData:
    """Tokenize ``text`` (and ``pair``), run ``model`` and keep what the views show, with its architecture."""
    batch = encode_for_view(tokenizer, text, pair, max_tokens)
    ids = batch["input_ids"][0]
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    b_start = None
    if pair is not None and "token_type_ids" in batch:
        seg_b = (batch["token_type_ids"][0] == 1).nonzero()
        b_start = int(seg_b[0]) if len(seg_b) else None
    attn = model_attentions(model, batch)
    windows, kv_heads = attention_structure(model)
    windows = windows if len(windows) == len(attn) else None
    return prepare(attn, tokens, b_start, layers, heads, max_tokens, max_values, windows, kv_heads)


def attention_views(
    model: nn.Module,
    tokenizer,
    text: str,
    pair: str | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 64,
    max_values: int = 150_000,
    decimals: int = 2,
) -> AttentionViews:
    """bertviz's head view and model view of ``model`` reading ``text`` (and ``pair``, segment B), offline.

    ``model``: a minibert Encoder, EncoderForPreTraining or EncoderForSequenceClassification (or a transformers
    model loaded with attn_implementation='eager'); ``tokenizer``: minibert's BertTokenizer or a transformers one.
    Display the result in a notebook, or ``.save("attention.html")`` (``.png``/``.svg``: a picture).
    """
    return AttentionViews(read_attention(model, tokenizer, text, pair, layers, heads, max_tokens, max_values), decimals)
