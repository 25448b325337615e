"""The kernels that compute attention fast, and the per-batch state they share.

:func:`minibert.encoder.attend` picks one of these for each layer; the result is the same softmax(q k^T / sqrt(d)) v in
every case, only the work skipped differs:

- :func:`local_attention`: ModernBERT's sliding window in blocks, so a local layer costs length x window instead of
  length squared;
- :func:`varlen_attention`: an unpadded stream of sequences (``cu_seqlens``), full attention within each sequence,
  nothing spent on padding;
- otherwise :func:`torch.nn.functional.scaled_dot_product_attention` (SDPA), which takes its mask-free kernels when
  nothing is padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class BatchState:
    """What every layer needs to know about the batch in flight, built once per forward pass.

    mask:         bool, broadcastable to (B, H, T, T), True = may attend; None = everyone may attend to everyone
    seq_ids:      (B, T) ints: tokens attend only to tokens with the same id (padding is its own id, packed
                  documents one id each); what the blocked local attention reads; None = one sequence per row
    cu_seqlens:   an unpadded stream (B = 1): sequence i is tokens cu_seqlens[i]:cu_seqlens[i + 1]
    position_ids: (B, T) or (T,) token positions for rotary embeddings; None = 0, 1, ..., T - 1
    """

    mask: torch.Tensor | None = None
    seq_ids: torch.Tensor | None = None
    cu_seqlens: list[int] | None = None
    position_ids: torch.Tensor | None = None
    _cache: dict = field(default_factory=dict, repr=False)  # rotary angles, local block masks: once per forward

    @classmethod
    def of(cls, mask: BatchState | torch.Tensor | None) -> BatchState:
        """Accept a plain bool mask as well; a (B, 1, 1, T) padding mask also gives the sequence ids."""
        if isinstance(mask, BatchState):
            return mask
        seq_ids = None
        if mask is not None and mask.dim() == 4 and mask.shape[1] == 1 and mask.shape[2] == 1:
            seq_ids = mask[:, 0, 0, :].long()  # padding and real tokens form two groups
        return cls(mask=mask, seq_ids=seq_ids)

    def rotary_angles(self, rotary, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``rotary(positions)`` in float32, computed once for all the layers that share a rotary base."""
        key = ("rotary", rotary.theta, rotary.inv_freq.numel(), device)
        if key not in self._cache:
            positions = self.position_ids if self.position_ids is not None else torch.arange(seq_len, device=device)
            self._cache[key] = rotary(positions, torch.float32)
        return self._cache[key]

    def local_blocks(self, window: int, batch: int, seq_len: int, dtype: torch.dtype, device) -> torch.Tensor:
        """:func:`local_block_mask` as an additive float mask (0 or -inf), which SDPA takes without converting."""
        key = ("local", window, batch, seq_len, dtype)
        if key not in self._cache:
            allowed = local_block_mask(self.seq_ids, batch, seq_len, window, device)
            self._cache[key] = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, -math.inf)
        return self._cache[key]


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
