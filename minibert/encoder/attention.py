"""Multi-head self-attention as the papers write it: project, rotate, attend, merge.

:class:`MultiHeadAttention` is the layer every encoder in the course uses (BERT, ModernBERT, EuroBERT): one fused
q/k/v projection, rotary positions when the config asks for them, grouped key/value heads. :func:`attend` computes
softmax(q k^T / sqrt(d) + mask) v and picks the kernel that suits the batch (:mod:`minibert.kernels`): SDPA, local
blocks for sliding windows, one call per sequence for unpadded streams, or the formula spelled out when the
attention probabilities are wanted (for plots and bertviz).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from .kernels import BatchState, local_attention, varlen_attention


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


def attend(
    q: torch.Tensor,  # (B, H, T, D)
    k: torch.Tensor,  # (B, KV, T, D)
    v: torch.Tensor,  # (B, KV, T, D)
    state: BatchState,
    window: int = 0,  # a local layer's whole window (ModernBERT: 128); 0 = global
    dropout_p: float = 0.0,
    return_probs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(d) + mask) v -> (B, H, T, D), and the probabilities when asked for.

    Every branch computes the same function; they differ in the work they skip.
    """
    T = q.size(2)
    local = window and T > window // 2 + 1  # shorter sequences fit inside the window
    gqa = k.size(1) != q.size(1)
    if return_probs:  # the formula spelled out, so the probabilities can be returned
        if state.cu_seqlens is not None:
            raise ValueError("attention probabilities need a padded batch; call the model with unpad=False")
        if gqa:  # share each key/value head with its group of query heads
            k = k.repeat_interleave(q.size(1) // k.size(1), dim=1)  # (B, H, T, D)
            v = v.repeat_interleave(q.size(1) // v.size(1), dim=1)
        mask = combine_masks(state.mask, sliding_window_mask(T, window, q.device) if local else None)
        return attention_with_probs(q, k, v, mask, dropout_p)
    if local and (state.seq_ids is not None or state.mask is None):  # blocks of the window: cost T x window
        blocks = state.local_blocks(window, q.size(0), T, q.dtype, q.device)  # shared by the local layers
        return local_attention(q, k, v, window, dropout_p=dropout_p, block_mask=blocks), None
    if state.cu_seqlens is not None:  # an unpadded stream: full attention within each sequence
        return varlen_attention(q, k, v, state.cu_seqlens, dropout_p), None
    mask = combine_masks(state.mask, sliding_window_mask(T, window, q.device) if local else None)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, enable_gqa=gqa)
    return y, None


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al., 2021): rotate pairs of q/k features by position-dependent angles.

    Uses the "rotate half" pairing of GPT-NeoX and Hugging Face (feature i pairs with i + D/2).
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        self.theta = theta
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
    """x * cos + rotate_half(x) * sin, computed on the two halves: fewer passes over x, the same rotation."""
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[..., : x1.size(-1)], sin[..., : x1.size(-1)]
    return torch.cat((torch.addcmul(x1 * c, x2, s, value=-1), torch.addcmul(x2 * c, x1, s)), dim=-1)


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
        self.window = 0 if config.is_global(layer) else config.local_attention
        self.rotary = None
        if config.position_embedding == "rope":
            theta = config.rope_theta if config.is_global(layer) else (config.local_rope_theta or config.rope_theta)
            self.rotary = RotaryEmbedding(config.head_dim, theta)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        state: BatchState | torch.Tensor | None = None,  # or a bool mask broadcastable to (B, H, T, T)
        return_probs: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        state = BatchState.of(state)
        q, k, v = self.project(x)
        q, k = self.rotate(q, k, state)
        dropout_p = self.dropout if self.training else 0.0
        y, probs = attend(q, k, v, state, self.window, dropout_p, return_probs)  # (B, H, T, D)
        return self.Wo(self.merge(y)), probs

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> queries (B, H, T, D), keys and values (B, KV, T, D)."""
        B, T, _ = x.shape
        qkv = self.Wqkv(x).view(B, T, self.num_heads + 2 * self.kv_heads, self.head_dim)  # (B, T, H+2KV, D)
        q, k, v = qkv.split([self.num_heads, self.kv_heads, self.kv_heads], dim=2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)

    def rotate(self, q: torch.Tensor, k: torch.Tensor, state: BatchState) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary positions (ModernBERT, EuroBERT): rotate queries and keys by their tokens' positions.

        In float32, as ModernBERT does, back in the activations' dtype (bf16 under autocast). BERT: unchanged.
        """
        if self.rotary is None:
            return q, k
        cos, sin = state.rotary_angles(self.rotary, q.size(2), q.device)  # (B or 1, 1, T, D) float32
        return apply_rotary(q.float(), cos, sin).to(q.dtype), apply_rotary(k.float(), cos, sin).to(k.dtype)

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, T, H*D): the heads side by side again, for the output projection."""
        B, H, T, D = y.shape
        return y.transpose(1, 2).reshape(B, T, H * D)
