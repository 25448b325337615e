"""Seeing attention: bertviz's head and model views that work offline, and matplotlib heatmap grids.

bertviz draws its views with d3 and jQuery fetched through require.js from a CDN, so they stay blank offline, and
in JupyterLab 4 they fail on first run with "require is not defined" (the library tag and the drawing script are
two outputs, and the script runs before the library has loaded). Here bertviz's own drawing code (``head_view.js``
and ``model_view.js`` of the installed package) runs on a small stand-in for the part of d3 and jQuery it uses,
written below, inside one self-contained page: nothing is fetched, nothing third-party is copied into the
project. In a notebook the page sits in an ``<iframe srcdoc>``, so it renders on first run in JupyterLab and
classic Jupyter alike; ``.save(path)`` writes the same page as an HTML file a browser opens offline.

Big models make big pages (every layer x head x token x token probability is embedded), so the views keep to a
budget: at most ``max_tokens`` tokens, probabilities rounded to ``decimals``, and evenly spaced layers (then
heads) dropped when the rest would not fit ``max_values``; each view says what it left out.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn


def _shim_js() -> str:
    """The part of d3 (v5) and jQuery that bertviz's drawing code calls, and require.js's two entry points
    (``shim.js`` beside this file), so bertviz's views draw without any library."""
    return resources.files(__package__).joinpath("shim.js").read_text(encoding="utf-8")


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 8px; background: {background}; color: {color};
        font-family: 'Helvetica Neue', Helvetica, Arial, sans-serif; }}
.minibert-note {{ font-size: 12px; color: #666; margin: 0 0 6px 0; }}
</style></head>
<body>
{body}
<script>{shim}</script>
{scripts}
</body></html>
"""

_CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)
_INLINE_SCRIPT = re.compile(r"<script[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{\s*paths:\s*\{[^}]*\}\s*\}\);")  # the CDN addresses
# bertviz also pastes its params into a comment ("// HACK: PYTHON_PARAMS is a template marker ..."): twice the data
_PARAMS_COMMENT = re.compile(r"// HACK: .* is a template marker that is replaced by actual params\.")


def _bertviz():
    try:
        import bertviz
    except ImportError:
        raise ImportError(
            "the attention views use bertviz: pip install 'bertviz>=1.4,<2' (or minibert[course])"
        ) from None
    return bertviz


def _split_bertviz_html(page: str) -> tuple[str, str]:
    """bertviz's returned HTML -> (markup, drawing script), dropping its CDN <script src> tag."""
    page = _CDN_SCRIPT.sub("", page)
    scripts = _INLINE_SCRIPT.findall(page)
    if len(scripts) != 1 or "requirejs(" not in scripts[0]:
        raise RuntimeError(
            "bertviz's HTML does not have the shape minibert expects (one inline script calling requirejs); "
            "minibert's views are tested with bertviz 1.4: pip install 'bertviz>=1.4,<2'"
        )
    markup = _INLINE_SCRIPT.sub("", page)
    script = _PARAMS_COMMENT.sub("// params: filled in by bertviz", _REQUIRE_CONFIG.sub("", scripts[0]))
    return markup.strip(), script


# ---------------------------------------------------------------------------------------------------------------
# What is shown: tokens and the (L, H, T, T) probabilities, cut to a size a browser opens comfortably


@dataclass
class AttentionData:
    """Attention probabilities of the layers and heads shown, with their tokens."""

    attentions: torch.Tensor  # (L, H, T, T) on the CPU: the layers/heads/tokens kept
    tokens: list[str]
    sentence_b_start: int | None = None  # index of the first token of segment B (sentence pairs)
    layers: list[int] = field(default_factory=list)  # original indices of the layers kept
    heads: list[int] = field(default_factory=list)  # original indices of the heads kept
    notes: list[str] = field(default_factory=list)  # what was cut, in words

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def _as_tensor(attentions: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """A tuple of per-layer (1, H, T, T) or (H, T, T) tensors, or one (L, H, T, T) tensor -> (L, H, T, T)."""
    if isinstance(attentions, torch.Tensor):
        layers = list(attentions) if attentions.dim() == 4 else [attentions]
    else:
        layers = list(attentions)
    if not layers or any(a is None for a in layers):
        raise ValueError(
            "no attention probabilities: run the model with output_attentions=True "
            "(a transformers model also needs attn_implementation='eager')"
        )
    out = []
    for i, a in enumerate(layers):
        a = a.detach()
        if a.dim() == 4:
            if a.size(0) != 1:
                raise ValueError(
                    f"layer {i} has a batch of {a.size(0)}; pass one sequence, e.g. [a[j:j+1] for a in ...]"
                )
            a = a[0]
        if a.dim() != 3 or a.size(-1) != a.size(-2):
            raise ValueError(f"layer {i}: expected (1, heads, T, T) or (heads, T, T), got {tuple(a.shape)}")
        out.append(a.float().cpu())
    return torch.stack(out)  # (L, H, T, T)


def _spread(n: int, k: int) -> list[int]:
    """k evenly spaced indices of range(n), always the first and the last."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def prepare(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    tokens: Sequence[str],
    sentence_b_start: int | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 64,
    max_values: int = 150_000,
) -> AttentionData:
    """Select the layers, heads and tokens to show; drop evenly spaced layers, then heads, beyond ``max_values``.

    ``max_values`` bounds layers x heads x tokens^2, the count of probabilities embedded in the page (and of lines
    the model view draws): 150k is about 1 MB of HTML (twice that for a sentence pair) and opens in a second.
    """
    attn = _as_tensor(attentions)  # (L, H, T, T)
    L, H, T, _ = attn.shape
    tokens = [str(t) for t in tokens]
    if len(tokens) != T:
        raise ValueError(f"{len(tokens)} tokens for attention over {T} positions; pass the tokens the model saw")
    if sentence_b_start is not None and not 0 < sentence_b_start < T:
        raise ValueError(f"sentence_b_start={sentence_b_start} must be inside the sequence (1..{T - 1})")
    for name, chosen, n in (("layers", layers, L), ("heads", heads, H)):
        bad = [i for i in (chosen or []) if not 0 <= i < n]
        if bad:
            raise ValueError(f"{name} {bad} do not exist; the model has {n} {name} (0..{n - 1})")
    notes = []
    if T > max_tokens:
        attn, tokens = attn[..., :max_tokens, :max_tokens], tokens[:max_tokens]
        notes.append(f"first {max_tokens} of {T} tokens (pass max_tokens= to see more)")
        if sentence_b_start is not None and sentence_b_start >= max_tokens:
            sentence_b_start = None
        T = max_tokens
    layer_ids = list(layers) if layers is not None else list(range(L))
    head_ids = list(heads) if heads is not None else list(range(H))
    per_head = T * T
    if len(layer_ids) * len(head_ids) * per_head > max_values:
        keep_layers = max(1, max_values // (len(head_ids) * per_head))
        layer_ids = [layer_ids[i] for i in _spread(len(layer_ids), keep_layers)]
        if len(head_ids) * per_head > max_values:
            head_ids = [head_ids[i] for i in _spread(len(head_ids), max(1, max_values // per_head))]
            notes.append(f"heads {head_ids} of {H}")
        notes.append(f"layers {layer_ids} of {L} (pass layers= or raise max_values= to choose)")
    attn = attn[layer_ids][:, head_ids]  # (L', H', T, T)
    return AttentionData(attn, tokens, sentence_b_start, layer_ids, head_ids, notes)


# ---------------------------------------------------------------------------------------------------------------
# The pages


class AttentionPage:
    """One self-contained HTML page (a bertviz view); shows itself in a notebook in an iframe."""

    def __init__(self, html_doc: str, height: int, width: str = "100%", title: str = "attention") -> None:
        self.html = html_doc
        self.height, self.width, self.title = height, width, title

    def iframe(self) -> str:
        """The page inlined in an <iframe srcdoc>: its scripts run in their own document, on first display."""
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" title="{html.escape(self.title)}" '
            f'style="width: {self.width}; height: {self.height}px; border: none;" sandbox="allow-scripts"></iframe>'
        )

    def _repr_html_(self) -> str:
        return self.iframe()

    def save(self, path: str | Path) -> Path:
        """Write the page as an HTML file that a browser opens offline."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path

    def __repr__(self) -> str:
        return f"<AttentionPage {self.title!r}, {len(self.html) / 1e3:.0f} kB>"


def _bertviz_attention(data: AttentionData, decimals: int) -> list[torch.Tensor]:
    # float64 rounded values print as 0.12, not 0.11999999731779099: a page 3-4 times smaller
    a = torch.round(data.attentions.double(), decimals=decimals)
    return [layer[None] for layer in a]  # bertviz wants one (1, H, T, T) tensor per layer


def _script_safe(tokens: list[str]) -> list[str]:
    """Tokens go inside a <script>: an invisible word joiner after "<" keeps "</script>" or "<!--" inert."""
    return [t.replace("<", "<\u2060") for t in tokens]


def _page(body: str, scripts: Sequence[str], title: str, dark: bool = False) -> str:
    return _PAGE.format(
        title=html.escape(title),
        background="black" if dark else "white",
        color="#ccc" if dark else "black",
        body=body,
        shim=_shim_js(),
        scripts="\n".join(f"<script>\n{s}\n</script>" for s in scripts),
    )


def _note_html(data: AttentionData, decimals: int) -> str:
    parts = [f"Showing {', '.join(data.notes)}." if data.notes else ""]
    parts.append(f"Probabilities rounded to {decimals} decimals.")
    return f'<p class="minibert-note">{html.escape(" ".join(p for p in parts if p))}</p>'


def head_view_page(data: AttentionData, decimals: int = 2, layer: int | None = None) -> AttentionPage:
    """bertviz's head view: one layer at a time, every head's attention as lines from each token to the others.

    Hover over a token to see where it looks; click the coloured squares to pick heads.
    """
    bv = _bertviz()
    if layer is not None and layer not in data.layers:
        raise ValueError(f"layer {layer} is not among the layers shown {data.layers}")
    out = bv.head_view(
        _bertviz_attention(data, decimals),
        _script_safe(data.tokens),
        sentence_b_start=data.sentence_b_start,
        include_layers=list(range(len(data.layers))),
        html_action="return",
    )
    markup, script = _split_bertviz_html(out.data)
    # bertviz numbers the layers it was given 0..n-1; label them with the model's own layer numbers
    script = _set_param(script, "include_layers", data.layers)
    if layer is not None:
        script = _set_param(script, "layer", layer)
    height = int(40 + 22.5 * len(data.tokens) + 60 + (24 if data.notes else 18))
    return AttentionPage(_page(_note_html(data, decimals) + markup, [script], "head view"), height, title="head view")


def model_view_page(data: AttentionData, decimals: int = 2) -> AttentionPage:
    """bertviz's model view: a thumbnail per layer (row) and head (column); click one to enlarge it."""
    bv = _bertviz()
    out = bv.model_view(
        _bertviz_attention(data, decimals),
        _script_safe(data.tokens),
        sentence_b_start=data.sentence_b_start,
        display_mode="light",
        include_layers=list(range(len(data.layers))),
        html_action="return",
    )
    markup, script = _split_bertviz_html(out.data)
    script = _set_param(script, "include_layers", data.layers)
    script = _set_param(script, "include_heads", data.heads)
    # model_view.js's layout: thumbnails of 7 * 12 / heads px per token below a 38 px axis, or the detail panel
    T, L, H = len(data.tokens), len(data.layers), len(data.heads)
    thumbnails = L * (T * 7 * 12 / H + 10) + 38
    detail = T * 18 + 30 + 25
    height = int(max(thumbnails, detail) + 60 + (24 if data.notes else 18))
    return AttentionPage(_page(_note_html(data, decimals) + markup, [script], "model view"), height, title="model view")


def _set_param(script: str, key: str, value) -> str:
    """Set one entry of the params bertviz embeds in its script (the last JSON object in it)."""
    pattern = re.compile(rf'"{key}": (null|-?\d+|\[[^\]]*\])')
    matches = list(pattern.finditer(script))
    if not matches:
        raise RuntimeError(f"bertviz's params have no {key!r}; minibert's views are tested with bertviz 1.4")
    m = matches[-1]  # the params follow the attention data, whose tokens could contain anything
    return script[: m.start()] + f'"{key}": {json.dumps(value)}' + script[m.end() :]


class AttentionViews:
    """The head view and the model view of one input; in a notebook it shows both."""

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
    ) -> AttentionViews:
        """Views of attention probabilities you already have: per-layer (1, H, T, T) tensors and their tokens."""
        data = prepare(attentions, tokens, sentence_b_start, layers, heads, max_tokens, max_values)
        return cls(data, decimals)

    def _repr_html_(self) -> str:
        return (
            "<div><b>Head view</b> (hover over a token; click the coloured squares to choose heads)</div>"
            + self.head.iframe()
            + "<div><b>Model view</b> (click a thumbnail to enlarge it)</div>"
            + self.model.iframe()
        )

    def save(self, path: str | Path) -> Path:
        """Both views in one HTML file that opens offline."""
        head_markup, head_script = _page_parts(self.head.html)
        model_markup, model_script = _page_parts(self.model.html)
        body = "<h3>Head view</h3>\n" + head_markup + "\n<h3>Model view</h3>\n" + model_markup
        path = Path(path)
        path.write_text(_page(body, [head_script, model_script], "attention views"), encoding="utf-8")
        return path

    def __repr__(self) -> str:
        d = self.data
        return (
            f"<AttentionViews: {len(d.layers)} layers x {len(d.heads)} heads x {len(d.tokens)} tokens; "
            f"head view {len(self.head.html) / 1e3:.0f} kB, model view {len(self.model.html) / 1e3:.0f} kB>"
        )


def _page_parts(page: str) -> tuple[str, str]:
    """(markup, drawing script) of a page made by _page."""
    body = page.split("<body>", 1)[1].rsplit("</body>", 1)[0]
    scripts = _INLINE_SCRIPT.findall(body)
    markup = _INLINE_SCRIPT.sub("", body).strip()
    return markup, scripts[-1]


# ---------------------------------------------------------------------------------------------------------------
# From a model and a tokenizer


def _encoder_of(model: nn.Module) -> nn.Module | None:
    from ..encoder.model import Encoder

    if isinstance(model, Encoder):
        return model
    inner = getattr(model, "encoder", None)
    return inner if isinstance(inner, Encoder) else None


def encode_for_view(tokenizer, text: str, pair: str | None = None, max_tokens: int = 64) -> dict[str, torch.Tensor]:
    """One (text, pair) as a batch of one: input_ids, token_type_ids, attention_mask (truncated to max_tokens).

    Works with minibert's BertTokenizer and with transformers tokenizers (both take texts then pairs).
    """
    if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
        raise TypeError("text (and pair) must be strings: the views show one sequence (or one sentence pair)")
    batch = tokenizer([text], [pair] if pair is not None else None, truncation=True, max_length=max_tokens,
                      return_tensors="pt")  # fmt: skip
    return {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in batch}


@torch.no_grad()
def model_attentions(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Every layer's attention probabilities (1, H, T, T) for a batch of one, in eval mode (no dropout)."""
    encoder = _encoder_of(model)
    net = encoder if encoder is not None else model
    device = next(net.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
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
    Display the result in a notebook, or ``.save("attention.html")``.
    """
    batch = encode_for_view(tokenizer, text, pair, max_tokens)
    ids = batch["input_ids"][0]
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    b_start = None
    if pair is not None and "token_type_ids" in batch:
        seg_b = (batch["token_type_ids"][0] == 1).nonzero()
        b_start = int(seg_b[0]) if len(seg_b) else None
    attn = model_attentions(model, batch)
    data = prepare(attn, tokens, b_start, layers, heads, max_tokens, max_values)
    return AttentionViews(data, decimals)
