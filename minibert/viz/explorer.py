"""A live attention explorer for JupyterLab: type a sentence, pick a model, a layer and a head; the head view, the
model view and a heatmap follow, with no code edited and nothing fetched.

``explore({"MiniLM": (model, tokenizer), ...})`` (or ``explore(model, tokenizer)``) returns an :class:`Explorer`;
the last line of a cell shows it. Its widgets are plain ipywidgets, so the same update runs from Python:
``explorer.text.value = "A new sentence."`` redraws everything, which is how the tests drive it.
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

from .data import AttentionData, prepare
from .flow import attention_flow, attention_rollout
from .pages import PICTURE_SUFFIXES, display_picture, head_view_page, save_figure
from .plots import plot_attention
from .views import AttentionViews, attention_structure, encode_for_view, model_attentions

HEATMAPS = ("attention", "rollout", "flow")
RUN_ME = "Attention explorer: run this cell in Jupyter to use it (a saved notebook keeps only the picture below)."


def _widgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError("the explorer uses ipywidgets: pip install 'ipywidgets>=8,<9' (minibert[course])") from None
    return ipywidgets


class Explorer:
    """Text boxes, a model menu, layer and head menus, and the views they drive."""

    def __init__(
        self,
        models: Mapping[str, tuple[nn.Module, object]],
        text: str = "The cat sat on the mat.",
        pair: str = "",
        max_tokens: int = 32,
        max_values: int = 60_000,
        notes: Mapping[str, str] | None = None,
    ) -> None:
        W = _widgets()
        if not models:
            raise ValueError("give at least one model: explore({'name': (model, tokenizer)})")
        self.models = dict(models)
        self.notes = dict(notes or {})
        self.max_tokens, self.max_values = max_tokens, max_values
        wide = W.Layout(width="95%")
        self.text = W.Text(value=text, description="Sentence A", continuous_update=False, layout=wide)
        self.pair = W.Text(value=pair, description="Sentence B", placeholder="optional second segment",
                           continuous_update=False, layout=wide)  # fmt: skip
        self.model = W.Dropdown(options=list(self.models), description="Model", layout=W.Layout(width="45%"))
        self.layer = W.Dropdown(options=[("0", 0)], description="Layer", layout=W.Layout(width="22%"))
        self.head = W.Dropdown(options=[("all", None)], description="Head", layout=W.Layout(width="22%"))
        self.kind = W.ToggleButtons(options=HEATMAPS, description="Heatmap", tooltips=[
            "this layer's attention (one head, or the mean of all)", "attention rollout up to this layer",
            "attention flow up to this layer"])  # fmt: skip
        self.status = W.HTML()
        self.head_view = W.HTML(layout=W.Layout(width="55%"))
        self.heatmap = W.Image(format="png", layout=W.Layout(width="45%", object_fit="contain"))
        self.model_view = W.HTML()
        self.widget = W.VBox([
            self.text, self.pair, W.HBox([self.model, self.layer, self.head]), self.kind, self.status,
            W.HBox([self.head_view, self.heatmap]), self.model_view,
        ])  # fmt: skip
        self.attentions: tuple[torch.Tensor, ...] = ()
        self.data: AttentionData | None = None
        self.views: AttentionViews | None = None
        self._busy = False
        for w in (self.text, self.pair, self.model):
            w.observe(self.update, names="value")
        for w in (self.layer, self.head, self.kind):
            w.observe(self._update_layer, names="value")
        self.update()

    # -- what the widgets do ------------------------------------------------------------------------------------

    def update(self, change=None) -> None:
        """Read the text boxes and the model menu, run the model, redraw everything."""
        start = time.perf_counter()
        name = self.model.value
        model, tokenizer = self.models[name]
        text, pair = self.text.value, self.pair.value.strip() or None
        try:
            batch = encode_for_view(tokenizer, text, pair, self.max_tokens)
            attentions = model_attentions(model, batch)
            tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
            b_start = None
            if pair is not None and "token_type_ids" in batch:
                seg_b = (batch["token_type_ids"][0] == 1).nonzero()
                b_start = int(seg_b[0]) if len(seg_b) else None
            windows, kv_heads = attention_structure(model)
            windows = windows if len(windows) == len(attentions) else None
            data = prepare(attentions, tokens, b_start, None, None, self.max_tokens, self.max_values, windows,
                           kv_heads)  # fmt: skip
        except (ValueError, TypeError) as e:
            self.status.value = f'<span style="color: #b00">{html.escape(str(e))}</span>'
            return
        self.attentions, self.data = attentions, data
        self.views = AttentionViews(data)
        self._busy = True  # new menus: one redraw at the end, not one per menu
        try:
            layer, head = self.layer.value, self.head.value
            self.layer.options = [(data.layer_label(i), l) for i, l in enumerate(data.layers)]
            self.layer.value = layer if layer in data.layers else data.layers[0]
            self.head.options = [("all (mean)", None)] + [(data.head_label(i), h) for i, h in enumerate(data.heads)]
            self.head.value = head if head in data.heads else None
        finally:
            self._busy = False
        self.model_view.value = self.views.model.iframe()
        self._update_layer()
        self._status(name, time.perf_counter() - start)

    def _update_layer(self, change=None) -> None:
        if self._busy or self.data is None:
            return
        heads = None if self.head.value is None else [self.head.value]
        self.head_view.value = head_view_page(self.data, layer=self.layer.value, heads=heads).iframe()
        buf = io.BytesIO()
        fig = self.figure()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")

        plt.close(fig)
        self.heatmap.value = buf.getvalue()

    def _status(self, name: str, seconds: float) -> None:
        d = self.data
        parts = [f"<b>{html.escape(name)}</b>: {len(d.tokens)} tokens, {len(self.attentions)} layers x "
                 f"{self.attentions[0].size(1)} heads; drawn in {seconds:.1f} s"]  # fmt: skip
        if name in self.notes:
            parts.append(html.escape(self.notes[name]))
        if d.notes:
            parts.append("showing " + html.escape(d.note))
        self.status.value = '<div style="font-size: 12px">' + ". ".join(parts) + ".</div>"

    # -- the heatmap ----------------------------------------------------------------------------------------------

    def heatmap_values(self) -> tuple[torch.Tensor, str]:
        """(T, T) values of the heatmap chosen, and its title."""
        d, layer = self.data, self.layer.value
        T = len(d.tokens)
        upto = [a[..., :T, :T] for a in self.attentions[: layer + 1]]  # every head of the layers up to this one
        if self.kind.value == "rollout":
            return attention_rollout(upto), f"rollout, layers 0-{layer}"
        if self.kind.value == "flow":
            return attention_flow(upto), f"flow, layers 0-{layer}"
        probs = self.attentions[layer][0, :, :T, :T]  # (H, T, T)
        if self.head.value is None:
            return probs.mean(0), f"layer {layer}, mean of {probs.size(0)} heads"
        return probs[self.head.value], f"layer {layer}, head {self.head.value}"

    def figure(self):
        """The heatmap as a matplotlib figure (rows: queries or outputs; columns: keys or inputs)."""
        values, title = self.heatmap_values()
        d = self.data
        allowed = d.allowed(d.layers.index(self.layer.value)) if self.kind.value == "attention" else None
        vmax = 1.0 if self.kind.value == "attention" else max(1e-6, float(values.max()))
        ax = plot_attention(values, d.tokens, title=title, allowed=allowed, vmax=vmax)
        return ax.figure

    # -- showing and saving --------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = RUN_ME
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)  # the widgets; text/plain for readers without a kernel
        display_picture(self.figure, "The heatmap as the explorer opened, as a picture (for a saved notebook):")

    def save(self, path: str | Path, dpi: int = 150) -> Path:
        """What the explorer shows now: .html, both views in one offline page; .png/.svg/.pdf, the heatmap."""
        path = Path(path)
        if path.suffix.lower() in PICTURE_SUFFIXES:
            return save_figure(self.figure(), path, dpi)
        return self.views.save(path)

    def __repr__(self) -> str:
        return f"<Explorer of {list(self.models)}: {self.text.value!r}>"


def explore(
    models: nn.Module | Mapping[str, tuple[nn.Module, object] | nn.Module],
    tokenizer=None,
    text: str = "The cat sat on the mat.",
    pair: str = "",
    **kwargs,
) -> Explorer:
    """An :class:`Explorer` of one model (``explore(model, tokenizer)``) or several
    (``explore({"MiniLM": (model, tokenizer), "mine": other_model}, tokenizer)``: a bare model uses ``tokenizer``).

    ``notes`` (model name -> words) are shown under the menus, e.g. that a model is untrained.
    """
    if isinstance(models, nn.Module):
        models = {type(models).__name__: (models, tokenizer)}
    table = {}
    for name, entry in models.items():
        model, tok = entry if isinstance(entry, tuple) else (entry, tokenizer)
        if tok is None:
            raise ValueError(f"no tokenizer for {name!r}: give (model, tokenizer) or pass tokenizer=")
        table[name] = (model, tok)
    return Explorer(table, text, pair, **kwargs)
