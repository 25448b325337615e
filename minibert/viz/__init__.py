"""Seeing attention (chapter 09): bertviz's views offline, a live explorer, pictures, head kinds, and whether
attention explains a prediction.

- ``data.py``         what a view shows: layers, heads and tokens kept, and the architecture (windows, shared K/V)
- ``pages.py``        bertviz's head and model views in one self-contained page (``shim.js`` stands in for d3,
                      jQuery and require.js); the local windows and shared key/value heads drawn beside them
- ``views.py``        both views of a model reading a text: ``attention_views(model, tokenizer, text, pair)``
- ``plots.py``        static pictures (PNG, SVG, PDF): one head's heatmap, a grid of every layer and head, the head view
- ``explorer.py``     ``explore(...)``: type a sentence, pick a model, layer and head; every view follows (ipywidgets)
- ``patterns.py``     what each head attends to ([CLS], [SEP], previous, next, same word), its entropy, its kind
- ``flow.py``         attention rollout and attention flow (Abnar & Zuidema, 2020), rank correlation
- ``attribution.py``  input x gradient and integrated gradients of a masked word or a sentence similarity
- ``explain.py``      the five methods side by side for one prediction, and how far they agree
"""

from .attribution import (
    Attribution,
    embedding_similarity,
    input_x_gradient,
    integrated_gradients,
    masked_word,
    mean_pooled,
)
from .data import AttentionData, prepare
from .explain import (
    METHODS,
    Explanation,
    explain_masked_word,
    explain_similarity,
    mean_correlations,
    plot_explanation,
)
from .explorer import Explorer, explore
from .flow import attention_flow, attention_rollout, layer_graph, rank_correlation
from .pages import AttentionPage, head_view_page, model_view_page, save_figure, structure_html
from .patterns import (
    HEAD_CLASSES,
    PATTERNS,
    HeadSurvey,
    classify_heads,
    head_entropy,
    head_patterns,
    plot_head_classes,
    survey_heads,
    top_heads,
)
from .plots import attention_grid, data_grid, head_view_figure, plot_attention
from .views import (
    AttentionViews,
    attention_structure,
    attention_views,
    encode_for_view,
    model_attentions,
    read_attention,
)
