"""What the views show: tokens and the (L, H, T, T) probabilities of the layers and heads kept, cut to a size a
browser opens comfortably, with what the architecture allows: which keys each layer's queries may see (ModernBERT's
local windows) and which heads share keys and values (EuroBERT's grouped-query attention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# d3's schemeCategory10: bertviz's colours for heads, used by the pictures too
HEAD_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")  # fmt: skip


@dataclass
class AttentionData:
    """Attention probabilities of the layers and heads shown, with their tokens."""

    attentions: torch.Tensor  # (L, H, T, T) on the CPU: the layers/heads/tokens kept
    tokens: list[str]
    sentence_b_start: int | None = None  # index of the first token of segment B (sentence pairs)
    layers: list[int] = field(default_factory=list)  # original indices of the layers kept
    heads: list[int] = field(default_factory=list)  # original indices of the heads kept
    notes: list[str] = field(default_factory=list)  # what was cut, in words
    windows: list[int | None] = field(default_factory=list)  # per layer kept: a local layer's whole window, or None
    kv_groups: list[int] = field(default_factory=list)  # per head kept: the key/value head it reads (empty: its own)

    @property
    def note(self) -> str:
        return "; ".join(self.notes)

    def window(self, i: int) -> int | None:
        """The whole window of the i-th layer shown (a token sees keys within window // 2), or None if global."""
        return self.windows[i] if self.windows else None

    def allowed(self, i: int) -> torch.Tensor:
        """(T, T) bool: the keys (columns) each query (row) of the i-th layer shown may attend to."""
        T = len(self.tokens)
        w = self.window(i)
        if w is None:
            return torch.ones(T, T, dtype=torch.bool)
        pos = torch.arange(T)
        return (pos[None, :] - pos[:, None]).abs() <= w // 2

    @property
    def has_local_layers(self) -> bool:
        return any(w is not None for w in self.windows)

    @property
    def shares_kv(self) -> bool:
        return len(set(self.kv_groups)) < len(self.kv_groups)

    def layer_label(self, i: int) -> str:
        """'layer 3', or 'layer 1 · local ±64' for a sliding-window layer."""
        w = self.window(i)
        return f"layer {self.layers[i]}" + ("" if w is None else f" · local ±{w // 2}")

    def head_label(self, i: int) -> str:
        """'head 4', or 'head 4 · kv 1' when heads share key/value heads."""
        return f"head {self.heads[i]}" + (f" · kv {self.kv_groups[i]}" if self.shares_kv else "")


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


def _kv_groups(kv_heads: int | Sequence[int] | None, H: int) -> list[int]:
    """Each query head's key/value head: ``kv_heads`` a count (grouped-query attention shares each of them with
    H / kv_heads consecutive query heads) or the list itself."""
    if kv_heads is None:
        return list(range(H))
    if isinstance(kv_heads, int):
        if kv_heads < 1 or H % kv_heads:
            raise ValueError(f"{H} heads cannot share {kv_heads} key/value heads: pass a divisor of {H}")
        return [h // (H // kv_heads) for h in range(H)]
    groups = [int(g) for g in kv_heads]
    if len(groups) != H:
        raise ValueError(f"kv_heads lists {len(groups)} key/value heads for {H} query heads; give one per head")
    return groups


def prepare(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    tokens: Sequence[str],
    sentence_b_start: int | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    max_tokens: int = 64,
    max_values: int = 150_000,
    windows: Sequence[int | None] | None = None,
    kv_heads: int | Sequence[int] | None = None,
) -> AttentionData:
    """Select the layers, heads and tokens to show; drop evenly spaced layers, then heads, beyond ``max_values``.

    ``max_values`` bounds layers x heads x tokens^2, the count of probabilities embedded in the page (and of lines
    the model view draws): 150k is about 1 MB of HTML (twice that for a sentence pair) and opens in a second.
    ``windows`` (one per layer: a local layer's whole window, None for a global one) and ``kv_heads`` (the count
    of key/value heads, or each head's) describe the architecture, which the views draw.
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
    if windows is not None and len(windows) != L:
        raise ValueError(f"windows gives {len(windows)} layers, the attention has {L}; give one per layer")
    groups = _kv_groups(kv_heads, H)
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
    kept_windows = [windows[i] or None for i in layer_ids] if windows is not None else []
    kept_groups = [groups[h] for h in head_ids] if kv_heads is not None else []
    return AttentionData(attn, tokens, sentence_b_start, layer_ids, head_ids, notes, kept_windows, kept_groups)
