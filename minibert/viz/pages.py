"""bertviz's head and model views as self-contained pages that work offline and on first run.

bertviz draws its views with d3 and jQuery fetched through require.js from a CDN, so they stay blank offline, and
in JupyterLab 4 they fail on first run with "require is not defined" (the library tag and the drawing script are
two outputs, and the script runs before the library has loaded). Here bertviz's own drawing code (``head_view.js``
and ``model_view.js`` of the installed package) runs on a small stand-in for the part of d3 and jQuery it uses
(``shim.js``), inside one self-contained page: nothing is fetched, nothing third-party is copied into the project.
In a notebook the page sits in an ``<iframe srcdoc>``, so it renders on first run in JupyterLab and classic
Jupyter alike; ``.save(path)`` writes the same page as an HTML file a browser opens offline, or its static
picture as PNG, SVG or PDF. Each page also draws the architecture when it matters: which keys a query may see
(local layers) and which heads share keys and values (grouped-query attention).
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .data import HEAD_COLORS, AttentionData
from .plots import data_grid, head_view_figure

PICTURE_SUFFIXES = (".png", ".svg", ".pdf")
RUN_THE_CELL = "If nothing shows here, run the cell: a saved notebook keeps only the picture below."


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


def save_figure(fig, path: str | Path, dpi: int = 150) -> Path:
    """Write a matplotlib figure as PNG, SVG or PDF (by the file's suffix) and close it."""
    path = Path(path)
    try:
        if path.suffix.lower() not in PICTURE_SUFFIXES:
            raise ValueError(f"{path.name}: save a picture as .png, .svg or .pdf")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def display_picture(figure: Callable, caption: str | None = None) -> None:
    """Display ``figure()`` (a matplotlib figure) as a PNG output, under an optional caption."""
    from IPython.display import HTML, Image, display

    if caption:
        display(HTML(f'<div style="font-size: 12px; color: #666">{caption}</div>'))
    fig = figure()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue(), format="png"))


def display_with_picture(caption: str, interactive_html: str, picture: Callable | None) -> None:
    """In a notebook: the interactive view, then a static picture of the same attention (what GitHub and an
    untrusted notebook show: JupyterLab strips iframes from outputs it does not trust)."""
    from IPython.display import HTML, display

    note = f'<div style="font-size: 12px; color: #666">{html.escape(RUN_THE_CELL)}</div>' if picture else ""
    display(HTML(f"<div>{caption}</div>{note}{interactive_html}"))
    if picture is not None:
        display_picture(picture)


class AttentionPage:
    """One self-contained HTML page (a bertviz view); shows itself in a notebook in an iframe.

    ``picture`` draws the same attention as a matplotlib figure, for ``save("view.png")`` (or .svg, .pdf).
    """

    def __init__(
        self, html_doc: str, height: int, width: str = "100%", title: str = "attention", picture: Callable | None = None
    ) -> None:
        self.html = html_doc
        self.height, self.width, self.title = height, width, title
        self.picture = picture

    def iframe(self) -> str:
        """The page inlined in an <iframe srcdoc>: its scripts run in their own document, on first display."""
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" title="{html.escape(self.title)}" '
            f'style="width: {self.width}; height: {self.height}px; border: none;" sandbox="allow-scripts"></iframe>'
        )

    def _repr_html_(self) -> str:
        return self.iframe()

    def show(self) -> None:
        """Display the interactive page and, below it, its static picture."""
        display_with_picture(f"<b>{html.escape(self.title.capitalize())}</b>", self.iframe(), self.picture)

    def save(self, path: str | Path, dpi: int = 150) -> Path:
        """Write the page as an HTML file that a browser opens offline, or its picture as .png, .svg or .pdf."""
        path = Path(path)
        if path.suffix.lower() in PICTURE_SUFFIXES:
            if self.picture is None:
                raise ValueError(f"this {self.title} has no static picture; save it as .html")
            return save_figure(self.picture(), path, dpi)
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


def structure_html(data: AttentionData) -> str:
    """What the architecture allows, drawn in SVG (no script): for each layer shown, the keys (x) each query (y)
    may attend to, blue, a band for a local layer; and the heads, in the view's colours, grouped under the
    key/value head they share. Empty for a model with neither (BERT)."""
    parts = []
    T = len(data.tokens)
    if data.has_local_layers:
        size, gap = 56, 22
        items = []
        for i in range(len(data.layers)):
            x0 = i * (size + gap)
            w = data.window(i)
            k = T if w is None else w // 2  # a query sees keys within k positions
            s = size / T
            if k + 1 >= T:
                band = f'<rect x="{x0}" y="0" width="{size}" height="{size}" fill="#9ecae1"/>'
            else:
                pts = [(0, 0), (k + 1, 0), (T, T - k - 1), (T, T), (T - k - 1, T), (0, k + 1)]
                band = '<polygon fill="#9ecae1" points="' + " ".join(f"{x0 + a * s:.1f},{b * s:.1f}" for a, b in pts)
                band += '"/>'
            label = "global" if w is None else f"±{w // 2}"
            items.append(
                f'<rect x="{x0}" y="0" width="{size}" height="{size}" fill="#eee" stroke="#999"/>{band}'
                f'<text x="{x0 + size / 2}" y="{size + 13}" font-size="11" text-anchor="middle">'
                f"{data.layers[i]}: {label}</text>"
            )
        width = len(data.layers) * (size + gap)
        parts.append(
            '<p class="minibert-note">Keys each query may see (x: key, y: query), by layer: global layers see '
            f"every token, local layers a window around the query ({T} tokens shown).</p>"
            f'<svg viewBox="0 0 {width} {size + 18}" style="width: min(100%, {width}px)">{"".join(items)}</svg>'
        )
    if data.shares_kv:
        box, gap = 16, 4
        items, x = [], 0
        groups = data.kv_groups
        for i, g in enumerate(groups):
            if i and g != groups[i - 1]:
                x += 3 * gap
            items.append(
                f'<rect x="{x}" y="0" width="{box}" height="{box}" fill="{HEAD_COLORS[i % 10]}">'
                f"<title>{html.escape(data.head_label(i))}</title></rect>"
            )
            last = i + 1 == len(groups) or groups[i + 1] != g
            first = i == 0 or groups[i - 1] != g
            if first:
                start = x
            if last:
                items.append(
                    f'<path d="M{start} {box + 4} v4 H{x + box} v-4" fill="none" stroke="#666"/>'
                    f'<text x="{(start + x + box) / 2}" y="{box + 20}" font-size="11" text-anchor="middle">K/V {g}'
                    "</text>"
                )
            x += box + gap
        parts.append(
            '<p class="minibert-note">Heads (in the colours of the view) that share one key/value head read the '
            "same keys and values with their own queries (grouped-query attention).</p>"
            f'<svg viewBox="0 0 {x} {box + 24}" style="width: min(100%, {x}px)">{"".join(items)}</svg>'
        )
    return f'<div class="minibert-structure">{"".join(parts)}</div>' if parts else ""


def _structure_height(data: AttentionData) -> int:
    """Pixels the drawings of :func:`structure_html` take (at most: wide ones shrink to fit)."""
    return (100 if data.has_local_layers else 0) + (70 if data.shares_kv else 0)


def head_view_page(
    data: AttentionData, decimals: int = 2, layer: int | None = None, heads: Sequence[int] | None = None
) -> AttentionPage:
    """bertviz's head view: one layer at a time, every head's attention as lines from each token to the others.

    Hover over a token to see where it looks; click the coloured squares to pick heads. ``layer`` (a model layer
    number) is the one it opens on, ``heads`` (model head numbers) the heads selected at first.
    """
    bv = _bertviz()
    if layer is not None and layer not in data.layers:
        raise ValueError(f"layer {layer} is not among the layers shown {data.layers}")
    if heads is not None and any(h not in data.heads for h in heads):
        raise ValueError(f"heads {list(heads)} are not all among the heads shown {data.heads}")
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
    if heads is not None:
        script = _set_param(script, "heads", [data.heads.index(h) for h in heads])
    extra = structure_html(data)
    height = int(40 + 22.5 * len(data.tokens) + 60 + (24 if data.notes else 18) + _structure_height(data))
    shown = data.layers.index(layer) if layer is not None else 0
    return AttentionPage(
        _page(_note_html(data, decimals) + extra + markup, [script], "head view"),
        height,
        title="head view",
        picture=lambda: head_view_figure(data, shown, heads),
    )


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
    extra = structure_html(data)
    height = int(max(thumbnails, detail) + 60 + (24 if data.notes else 18) + _structure_height(data))
    return AttentionPage(
        _page(_note_html(data, decimals) + extra + markup, [script], "model view"),
        height,
        title="model view",
        picture=lambda: data_grid(data),
    )


def _set_param(script: str, key: str, value) -> str:
    """Set one entry of the params bertviz embeds in its script (the last JSON object in it)."""
    pattern = re.compile(rf'"{key}": (null|-?\d+|\[[^\]]*\])')
    matches = list(pattern.finditer(script))
    if not matches:
        raise RuntimeError(f"bertviz's params have no {key!r}; minibert's views are tested with bertviz 1.4")
    m = matches[-1]  # the params follow the attention data, whose tokens could contain anything
    return script[: m.start()] + f'"{key}": {json.dumps(value)}' + script[m.end() :]


def _page_parts(page: str) -> tuple[str, str]:
    """(markup, drawing script) of a page made by _page."""
    body = page.split("<body>", 1)[1].rsplit("</body>", 1)[0]
    scripts = _INLINE_SCRIPT.findall(body)
    markup = _INLINE_SCRIPT.sub("", body).strip()
    return markup, scripts[-1]
