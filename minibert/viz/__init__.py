"""Seeing attention (chapter 09): bertviz's head and model views that work offline, heatmaps, and head patterns.

- ``views.py``     bertviz's views in one self-contained page (``shim.js`` stands in for d3, jQuery and require.js)
- ``plots.py``     static pictures: one head's heatmap, a grid of every layer and head
- ``patterns.py``  what each head attends to: [CLS], [SEP], previous, same or next token, the same word
"""

from .patterns import PATTERNS, head_patterns, top_heads
from .plots import attention_grid, plot_attention
from .views import (
    AttentionData,
    AttentionPage,
    AttentionViews,
    attention_views,
    encode_for_view,
    head_view_page,
    model_attentions,
    model_view_page,
    prepare,
)
