"""Tokenised data for fine-tuning: padded once, trimmed per batch; batches of similar lengths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Encoded:
    """Token ids of N texts (or text pairs), right-padded to a common length, with optional labels."""

    input_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, T), 1 = token, 0 = padding
    token_type_ids: torch.Tensor | None = None  # (N, T), segment A = 0, B = 1
    labels: torch.Tensor | None = None  # (N,)

    def __post_init__(self) -> None:
        if self.input_ids.dim() != 2 or self.attention_mask.shape != self.input_ids.shape:
            raise ValueError(
                f"input_ids {tuple(self.input_ids.shape)} and attention_mask {tuple(self.attention_mask.shape)} "
                "must both be (N, T)"
            )
        if self.labels is not None and len(self.labels) != len(self.input_ids):
            raise ValueError(f"{len(self.labels)} labels for {len(self.input_ids)} texts")
        if self.attention_mask.numel() and bool((self.attention_mask[:, 1:] > self.attention_mask[:, :-1]).any()):
            raise ValueError("padding must be on the right (attention_mask 1...1 0...0 in every row)")

    def __len__(self) -> int:
        return self.input_ids.size(0)

    @property
    def lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(1)  # (N,)

    def subset(self, index: torch.Tensor | Sequence[int] | np.ndarray) -> Encoded:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        pick = lambda t: None if t is None else t[idx]
        return Encoded(self.input_ids[idx], self.attention_mask[idx], pick(self.token_type_ids), pick(self.labels))

    def batch(self, index: torch.Tensor | Sequence[int], device: torch.device | str | None = None) -> dict:
        """The model inputs of the rows in ``index``, cut to their longest row (no compute spent on padding)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        T = max(int(self.lengths[idx].max()), 1) if len(idx) else 1
        out = {"input_ids": self.input_ids[idx, :T], "attention_mask": self.attention_mask[idx, :T]}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids[idx, :T]
        return {k: v.to(device) for k, v in out.items()} if device is not None else out


def encode(
    tokenizer: Callable,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    labels: Sequence[int] | torch.Tensor | None = None,
    max_length: int = 128,
) -> Encoded:
    """Tokenise texts (and second segments ``pairs``: [CLS] a [SEP] b [SEP]) with a minibert BertTokenizer."""
    if isinstance(texts, str):
        raise TypeError("encode takes a list of texts; wrap a single text as [text]")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(pairs)} second segments for {len(texts)} texts")
    kwargs = {"pairs": list(pairs)} if pairs is not None else {}
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt", **kwargs)
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return Encoded(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), y)


def length_batches(lengths: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Indices grouped into batches of similar length (for inference: far less padding than random batches)."""
    order = torch.argsort(lengths, stable=True)
    return list(order.split(batch_size))


def shuffled_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, group: int = 4
) -> list[torch.Tensor]:
    """Random training batches of similar lengths: shuffle, sort each run of ``group`` batches by length, cut,
    and shuffle the batches. Batches stay random (what SGD wants) but carry far less padding.
    """
    perm = torch.randperm(len(lengths), generator=generator)
    batches = []
    for chunk in perm.split(batch_size * max(1, group)):
        batches += list(chunk[torch.argsort(lengths[chunk], stable=True)].split(batch_size))
    order = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in order]
