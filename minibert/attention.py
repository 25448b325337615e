"""Multi-head self-attention: masks, rotary positions, grouped key/value heads.

The fast path is :func:`torch.nn.functional.scaled_dot_product_attention`; when the attention probabilities
are wanted (for plots and bertviz) the same computation is spelled out so they can be returned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) 1 = real token, 0 = padding  ->  (B, 1, 1, T) bool, True = may be attended to.

    Returns None when nothing is padded, so SDPA can take its mask-free kernels.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


def sliding_window_mask(seq_len: int, window: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bool: token i sees token j when |i - j| <= window // 2 (ModernBERT's local attention)."""
    pos = torch.arange(seq_len, device=device)
    return (pos[None, :] - pos[:, None]).abs() <= window // 2


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND of boolean masks that broadcast together; None stands for 'no constraint'."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


def attention_with_probs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, dropout_p: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v, also returning the probabilities. q, k, v: (B, H, T, D)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)
    out = F.dropout(probs, p=dropout_p) @ v if dropout_p > 0 else probs @ v  # (B, H, T, D)
    return out, probs


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al., 2021): rotate pairs of q/k features by position-dependent angles.

    Uses the "rotate half" pairing of GPT-NeoX and Hugging Face (feature i pairs with i + D/2).
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, T) or (T,) -> cos, sin of shape (B or 1, 1, T, D)."""
        if position_ids.dim() == 1:
            position_ids = position_ids[None]
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, T, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, T, D)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin


class MultiHeadAttention(nn.Module):
    """Self-attention with one fused q/k/v projection (one matmul instead of three).

    Wqkv's output rows are [query heads | key heads | value heads]; with grouped-query attention the key and
    value blocks hold fewer heads, each shared by num_heads / num_kv_heads query heads.
    """

    def __init__(self, config: EncoderConfig, layer: int = 0) -> None:
        super().__init__()
        self.num_heads, self.kv_heads, self.head_dim = config.num_heads, config.kv_heads, config.head_dim
        self.q_size, self.kv_size = config.num_heads * config.head_dim, config.kv_heads * config.head_dim
        self.Wqkv = nn.Linear(config.hidden_size, self.q_size + 2 * self.kv_size, bias=config.attention_bias)
        self.Wo = nn.Linear(self.q_size, config.hidden_size, bias=config.attention_bias)
        self.dropout = config.attention_dropout
        self.is_global = config.is_global(layer)
        self.window = 0 if self.is_global else config.local_attention
        self.rotary = None
        if config.position_embedding == "rope":
            theta = config.rope_theta if self.is_global else (config.local_rope_theta or config.rope_theta)
            self.rotary = RotaryEmbedding(config.head_dim, theta)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        mask: torch.Tensor | None = None,  # bool, broadcastable to (B, H, T, T); True = attend
        position_ids: torch.Tensor | None = None,  # (B, T) or (T,), used by rotary positions
        return_probs: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = x.shape
        q, k, v = self.Wqkv(x).split((self.q_size, self.kv_size, self.kv_size), dim=-1)
        q = q.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        if self.rotary is not None:
            if position_ids is None:
                position_ids = torch.arange(T, device=x.device)
            cos, sin = self.rotary(position_ids, q.dtype)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.window:
            mask = combine_masks(mask, sliding_window_mask(T, self.window, x.device))
        dropout_p = self.dropout if self.training else 0.0
        probs = None
        if return_probs:
            if self.kv_heads != self.num_heads:  # share each key/value head with its group of query heads
                k = k.repeat_interleave(self.num_heads // self.kv_heads, dim=1)  # (B, H, T, D)
                v = v.repeat_interleave(self.num_heads // self.kv_heads, dim=1)
            y, probs = attention_with_probs(q, k, v, mask, dropout_p)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, enable_gqa=self.kv_heads != self.num_heads
            )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, self.q_size)  # (B, T, H*D)
        return self.Wo(y), probs
