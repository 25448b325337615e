"""How a batch of sequences of different lengths reaches the layers: padding, unpadding and packing.

A padded (B, T) batch is the simple form: every layer masks the padding. ModernBERT's unpadding runs the same
batch as one (1, N) stream of its N real tokens, and packing puts several short sequences in one row; either way
no compute is spent on padding, and each sequence still attends only within itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .attention import padding_mask
from .kernels import BatchState


def padded_state(
    attention_mask: torch.Tensor | None, document_ids: torch.Tensor | None, position_ids: torch.Tensor | None
) -> BatchState:
    """A padded batch's state: its padding, and (packed rows) attention only within each document."""
    if document_ids is None:
        mask = padding_mask(attention_mask)  # (B, 1, 1, T) or None
        seq_ids = None if mask is None else attention_mask.long()
        return BatchState(mask=mask, seq_ids=seq_ids, position_ids=position_ids)
    seq_ids = document_ids.long() + 1  # (B, T); padding gets 0
    if attention_mask is not None:
        seq_ids = seq_ids * attention_mask.long()
    same = seq_ids[:, None, :, None] == seq_ids[:, None, None, :]  # (B, 1, T, T)
    mask = same if attention_mask is None else same & attention_mask.bool()[:, None, None, :]
    return BatchState(mask=mask, seq_ids=seq_ids, position_ids=position_ids)


def positions_in_documents(document_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) document numbers -> (B, T) positions that restart at 0 where each document starts."""
    B, T = document_ids.shape
    pos = torch.arange(T, device=document_ids.device).expand(B, T)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    return pos - torch.where(starts, pos, 0).cummax(dim=1).values


@dataclass
class Unpadded:
    """Where the real tokens of a (B, T) batch sit in the concatenated stream, to undo the unpadding."""

    index: torch.Tensor  # (N,) flat positions b * T + t of the real tokens
    batch_shape: tuple[int, int]
    state: BatchState  # cu_seqlens, sequence ids and positions of the stream

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(1, N, C) stream -> (B, T, C) batch, zeros at the padding."""
        B, T = self.batch_shape
        out = x.new_zeros(B * T, x.size(-1))
        out[self.index] = x[0]
        return out.view(B, T, -1)


def unpad_batch(
    x: torch.Tensor,  # (B, T, C)
    attention_mask: torch.Tensor | None,  # (B, T)
    document_ids: torch.Tensor | None,  # (B, T)
    position_ids: torch.Tensor | None,  # (B, T) or (T,)
) -> tuple[torch.Tensor, Unpadded]:
    """Drop the padding: (B, T, C) -> one (1, N, C) stream of the real tokens, with its sequence boundaries.

    A sequence is a row of the batch, or a document of a row when documents are packed into rows.
    """
    B, T, C = x.shape
    keep = torch.ones(B * T, dtype=torch.bool, device=x.device) if attention_mask is None else attention_mask.bool()
    index = keep.reshape(-1).nonzero().squeeze(1)  # (N,)
    rows = torch.arange(B, device=x.device).repeat_interleave(T)[index]
    key = rows if document_ids is None else rows * (int(document_ids.max()) + 1) + document_ids.reshape(-1)[index]
    new = torch.ones_like(key, dtype=torch.bool)
    new[1:] = key[1:] != key[:-1]  # a sequence starts where the (row, document) changes
    seq_ids = new.cumsum(0) - 1  # (N,)
    starts = new.nonzero().squeeze(1).tolist()
    cu_seqlens = starts + [index.numel()]
    if position_ids is None:
        position_ids = torch.arange(T, device=x.device)
    positions = position_ids.expand(B, T).reshape(-1)[index][None]  # (1, N)
    stream = x.reshape(B * T, C)[index][None]  # (1, N, C)
    state = BatchState(seq_ids=seq_ids[None], cu_seqlens=cu_seqlens, position_ids=positions)
    return stream, Unpadded(index, (B, T), state)


def pack_sequences(sequences: list[list[int]], max_length: int, pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pack token sequences into as few rows of ``max_length`` as fit (first-fit, longest first).

    Returns input_ids, attention_mask, document_ids (which sequence of the row each token belongs to) and
    position_ids (restarting at 0 for each sequence), all (rows, max_length). Give ``document_ids`` to the
    model and no sequence attends to another: the same outputs as running each alone, with no padding to spend
    compute on. Sequences longer than ``max_length`` are refused (cut them first).
    """
    too_long = [i for i, s in enumerate(sequences) if len(s) > max_length]
    if too_long:
        raise ValueError(f"sequences {too_long[:5]} are longer than max_length={max_length}; cut them first")
    rows: list[list[int]] = []  # indices of the sequences in each row
    room: list[int] = []
    for i in sorted(range(len(sequences)), key=lambda i: -len(sequences[i])):
        r = next((r for r, free in enumerate(room) if free >= len(sequences[i])), None)
        if r is None:
            rows.append([])
            room.append(max_length)
            r = len(rows) - 1
        rows[r].append(i)
        room[r] -= len(sequences[i])
    shape = (len(rows), max_length)
    ids = torch.full(shape, pad_token_id, dtype=torch.long)
    mask, docs, pos = (torch.zeros(shape, dtype=torch.long) for _ in range(3))
    for r, members in enumerate(rows):
        start = 0
        for d, i in enumerate(members):
            n = len(sequences[i])
            ids[r, start : start + n] = torch.as_tensor(sequences[i], dtype=torch.long)
            mask[r, start : start + n] = 1
            docs[r, start : start + n] = d
            pos[r, start : start + n] = torch.arange(n)
            start += n
        docs[r, start:] = max(len(members) - 1, 0)  # padding: any id will do, the attention mask hides it
    return {"input_ids": ids, "attention_mask": mask, "document_ids": docs, "position_ids": pos}
