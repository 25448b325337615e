"""Multi-head self-attention: masks, rotary positions, grouped key/value heads, local windows and unpadding.

The fast path is :func:`torch.nn.functional.scaled_dot_product_attention` (SDPA). Three ways to skip work:

- local layers (ModernBERT) attend within a sliding window; :func:`local_attention` computes them in blocks, so
  their cost grows with length x window instead of length squared;
- unpadded batches (``cu_seqlens``): the sequences of a batch are concatenated without padding and each global
  layer attends within each sequence (:func:`varlen_attention`), so nothing is spent on padding;
- without padding SDPA takes its mask-free kernel, which is faster than the same computation with a mask.

When the attention probabilities are wanted (for plots and bertviz) the computation is spelled out so they can
be returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


@dataclass
class AttentionMask:
    """Who may attend to whom, in the forms the different kernels want (built once per forward pass).

    dense:      bool, broadcastable to (B, H, T, T); True = may attend; None = everyone (the SDPA/probability path)
    seq_ids:    (B, T) ints: tokens attend only to tokens with the same id (padding = its own id, packed
                documents one id each); used by the blocked local attention; None = all one sequence
    cu_seqlens: an unpadded stream (B = 1): sequence i is tokens cu_seqlens[i]:cu_seqlens[i + 1]
    """

    dense: torch.Tensor | None = None
    seq_ids: torch.Tensor | None = None
    cu_seqlens: list[int] | None = None
    _blocks: dict = field(default_factory=dict, repr=False)  # local layers' block masks, built once per forward
    _angles: dict = field(default_factory=dict, repr=False)  # rotary cos/sin per base, built once per forward
    _scratch: dict = field(default_factory=dict, repr=False)  # inference buffers that every layer reuses

    def rotary(self, rotary: RotaryEmbedding, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``rotary(position_ids)`` in float32, shared by the layers with the same base and positions."""
        key = (rotary.theta, rotary.inv_freq.numel(), rotary.inv_freq.device)
        cached = self._angles.get(key)
        if cached is None or cached[0] is not position_ids:
            cached = self._angles[key] = (position_ids, rotary(position_ids, torch.float32))
        return cached[1]

    def scratch(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """One buffer of this shape for the whole forward pass, for a layer's intermediate activation in inference.

        A fresh (B, T, I) tensor per layer is a large allocation that the system maps and faults in page by page
        every time (bert-base, 8 x 512: 50 MB per layer); reusing one keeps those pages warm.
        """
        key = (shape, dtype, device)
        if key not in self._scratch:
            self._scratch[key] = torch.empty(shape, dtype=dtype, device=device)
        return self._scratch[key]

    def local_blocks(self, window: int, batch: int, seq_len: int, dtype: torch.dtype, device) -> torch.Tensor:
        """:func:`local_block_mask` as an additive float mask (0 or -inf), which SDPA takes without converting."""
        key = (window, batch, seq_len, dtype)
        if key not in self._blocks:
            allowed = local_block_mask(self.seq_ids, batch, seq_len, window, device)
            self._blocks[key] = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, -math.inf)
        return self._blocks[key]

    @classmethod
    def of(cls, mask: AttentionMask | torch.Tensor | None) -> AttentionMask:
        """Accept a plain bool mask as well; a (B, 1, 1, T) padding mask also gives the sequence ids."""
        if isinstance(mask, AttentionMask):
            return mask
        seq_ids = None
        if mask is not None and mask.dim() == 4 and mask.shape[1] == 1 and mask.shape[2] == 1:
            seq_ids = mask[:, 0, 0, :].long()  # padding and real tokens form two groups
        return cls(dense=mask, seq_ids=seq_ids)


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


def local_block_mask(
    seq_ids: torch.Tensor | None, batch: int, seq_len: int, window: int, device: torch.device | None = None
) -> torch.Tensor:
    """The mask of :func:`local_attention`'s blocks: (B * nb, 1, w, 3w) bool, w = window // 2, nb = ceil(T / w).

    Row a of block b is query b*w + a; column c is key b*w - w + c. It may attend when |query - key| <= w and both
    have the same sequence id. Past the end, queries get id -1 (they see only each other, so no row is empty) and
    the halo beyond either end -2 (seen by nobody).
    """
    w = window // 2
    nb = -(-seq_len // w)  # number of blocks
    if seq_ids is None:
        seq_ids = torch.zeros(batch, seq_len, dtype=torch.long, device=device)
    ids = F.pad(seq_ids.long(), (0, nb * w - seq_len), value=-1)  # (B, nb*w)
    ids_q = ids.view(batch, nb, w)
    ids_k = F.pad(ids, (w, w), value=-2).unfold(1, 3 * w, w)  # (B, nb, 3w)
    pos = torch.arange(3 * w, device=ids.device)
    band = (pos[None, :] - pos[:w, None] - w).abs() <= w  # (w, 3w)
    return ((ids_q[..., :, None] == ids_k[..., None, :]) & band).view(batch * nb, 1, w, 3 * w)


def local_attention(
    q: torch.Tensor,  # (B, H, T, D)
    k: torch.Tensor,  # (B, KV, T, D)
    v: torch.Tensor,  # (B, KV, T, D)
    window: int,
    seq_ids: torch.Tensor | None = None,  # (B, T): attend only within equal ids
    dropout_p: float = 0.0,
    block_mask: torch.Tensor | None = None,  # local_block_mask(...), when several layers share it
) -> torch.Tensor:
    """Sliding-window attention computed in blocks: token i sees j when |i - j| <= window // 2.

    The sequence is cut into blocks of w = window // 2 queries; each block needs only the keys of itself and its
    two neighbours (3w keys), so the cost is T x 3w instead of T x T. Same result as SDPA with the dense
    sliding-window mask.
    """
    B, H, T, D = q.shape
    KV = k.size(1)
    w = window // 2
    nb = -(-T // w)  # number of blocks
    pad = nb * w - T
    if block_mask is None:
        block_mask = local_block_mask(seq_ids, B, T, window, q.device)
    qb = F.pad(q, (0, 0, 0, pad)).view(B, H, nb, w, D).transpose(1, 2).reshape(B * nb, H, w, D)

    def halo(x: torch.Tensor) -> torch.Tensor:  # (B, KV, T, D) -> (B*nb, KV, 3w, D)
        xp = F.pad(x, (0, 0, w, pad + w))  # (B, KV, (nb+2)w, D)
        return xp.unfold(2, 3 * w, w).permute(0, 2, 1, 4, 3).reshape(B * nb, KV, 3 * w, D)

    y = F.scaled_dot_product_attention(
        qb, halo(k), halo(v), attn_mask=block_mask, dropout_p=dropout_p, enable_gqa=KV != H
    )  # (B*nb, H, w, D)
    return y.view(B, nb, H, w, D).transpose(1, 2).reshape(B, H, nb * w, D)[:, :, :T]


def varlen_attention(
    q: torch.Tensor,  # (1, H, N, D): an unpadded stream of sequences
    k: torch.Tensor,  # (1, KV, N, D)
    v: torch.Tensor,  # (1, KV, N, D)
    cu_seqlens: list[int],
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Full attention within each sequence of the stream (the block-diagonal pattern), one SDPA call each.

    Measured on CPU (torch 2.13), this loop beats both a dense block-diagonal mask and nested (jagged) tensors,
    whose SDPA falls back to a slow path on CPU.
    """
    gqa = k.size(1) != q.size(1)
    parts = [
        F.scaled_dot_product_attention(
            q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], dropout_p=dropout_p, enable_gqa=gqa
        )  # (1, H, L, D)
        for s, e in zip(cu_seqlens[:-1], cu_seqlens[1:])
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


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
        self.sizes = (self.q_size, self.kv_size, self.kv_size)  # Wqkv's row blocks
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
        mask: AttentionMask | torch.Tensor | None = None,  # a bool tensor broadcastable to (B, H, T, T) works too
        position_ids: torch.Tensor | None = None,  # (B, T) or (T,), used by rotary positions
        return_probs: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = x.shape
        mask = AttentionMask.of(mask)
        H, KV = self.num_heads, self.kv_heads
        if self.rotary is None:
            # three matmuls on row blocks of Wqkv rather than one: each result is contiguous, which SDPA's CPU
            # kernel reads faster than the strided thirds of one fused output (the same numbers either way)
            bias = self.Wqkv.bias.split(self.sizes) if self.Wqkv.bias is not None else (None, None, None)
            q, k, v = (F.linear(x, w, b) for w, b in zip(self.Wqkv.weight.split(self.sizes), bias))
            q = q.view(B, T, H, self.head_dim).transpose(1, 2)  # (B, H, T, D)
            k = k.view(B, T, KV, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
            v = v.view(B, T, KV, self.head_dim).transpose(1, 2)  # (B, KV, T, D)
        else:  # rotate the queries and keys together, in the (B, T, heads, D) layout
            qkv = self.Wqkv(x).view(B, T, H + 2 * KV, self.head_dim)  # (B, T, heads of q | k | v, D)
            qk, v = qkv[:, :, : H + KV], qkv[:, :, H + KV :]
            if position_ids is None:
                position_ids = torch.arange(T, device=x.device)
            cos, sin = mask.rotary(self.rotary, position_ids)  # (B or 1, 1, T, D) float32
            # rotate in float32 (as ModernBERT does) and come back to the activations' dtype (bf16 under autocast)
            qk = apply_rotary(qk.float(), cos.transpose(1, 2), sin.transpose(1, 2)).to(qkv.dtype)  # (B, T, H+KV, D)
            q = qk[:, :, :H].transpose(1, 2)  # (B, H, T, D)
            k = qk[:, :, H:].transpose(1, 2)  # (B, KV, T, D)
            v = v.transpose(1, 2)  # (B, KV, T, D)
        dropout_p = self.dropout if self.training else 0.0
        local = self.window and T > self.window // 2 + 1  # shorter sequences fit inside the window
        probs = None
        if return_probs:
            if mask.cu_seqlens is not None:
                raise ValueError("attention probabilities need a padded batch; call the model with unpad=False")
            dense = combine_masks(mask.dense, sliding_window_mask(T, self.window, x.device) if local else None)
            if self.kv_heads != self.num_heads:  # share each key/value head with its group of query heads
                k = k.repeat_interleave(self.num_heads // self.kv_heads, dim=1)  # (B, H, T, D)
                v = v.repeat_interleave(self.num_heads // self.kv_heads, dim=1)
            y, probs = attention_with_probs(q, k, v, dense, dropout_p)
        elif local and (mask.seq_ids is not None or mask.dense is None):
            blocks = mask.local_blocks(self.window, B, T, q.dtype, x.device)  # shared by the local layers
            y = local_attention(q, k, v, self.window, dropout_p=dropout_p, block_mask=blocks)  # (B, H, T, D)
        elif mask.cu_seqlens is not None:
            if self.rotary is not None:  # the strided slices of the rotated projection: SDPA reads copies faster
                q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            y = varlen_attention(q, k, v, mask.cu_seqlens, dropout_p)  # (1, H, N, D)
        else:
            if self.rotary is not None:
                q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            dense = combine_masks(mask.dense, sliding_window_mask(T, self.window, x.device) if local else None)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=dense, dropout_p=dropout_p, enable_gqa=self.kv_heads != self.num_heads
            )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, self.q_size)  # (B, T, H*D)
        return self.Wo(y), probs
