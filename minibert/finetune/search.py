"""Sentence embeddings and cosine search: one normalised vector per text, compared by cosine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..encoder.model import Encoder
from .data import Encoded, length_batches
from .pooling import _check_strategy, needs_hidden_states, normalize, pool


@torch.no_grad()
def embed(
    encoder: Encoder,
    data: Encoded,
    pooling: str | Sequence[str] = "mean",
    normalized: bool = True,
    batch_size: int = 64,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """(N, C) sentence embeddings on the CPU; several strategies at once give a dict (one forward pass)."""
    names = [pooling] if isinstance(pooling, str) else list(pooling)
    for name in names:
        _check_strategy(name)
    hidden = any(needs_hidden_states(n) for n in names)
    was_training, device = encoder.training, next(encoder.parameters()).device
    encoder.eval()
    try:
        parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        order = length_batches(data.lengths, batch_size)
        for idx in order:
            b = data.batch(idx, device)
            out = encoder(**b, output_hidden_states=hidden)
            for n in names:
                v = pool(out, b["attention_mask"], n).float()
                parts[n].append((normalize(v) if normalized else v).cpu())
        inverse = torch.argsort(torch.cat(order)) if order else torch.zeros(0, dtype=torch.long)
        result = {
            n: torch.cat(v)[inverse] if v else torch.zeros(0, encoder.config.hidden_size) for n, v in parts.items()
        }
    finally:
        encoder.train(was_training)
    return result[pooling] if isinstance(pooling, str) else result


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(Q, C) x (N, C) -> (Q, N) cosines."""
    return normalize(a.float()) @ normalize(b.float()).T


def cosine_search(queries: torch.Tensor, corpus: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The k corpus rows nearest each query by cosine: (scores (Q, k), indices (Q, k)), best first."""
    if queries.dim() == 1:
        queries = queries[None]
    if queries.size(-1) != corpus.size(-1):
        raise ValueError(f"queries have {queries.size(-1)} features, the corpus {corpus.size(-1)}: same encoder?")
    k = min(k, corpus.size(0))
    return cosine_similarity_matrix(queries, corpus).topk(k, dim=-1)


def retrieval_scores(queries: torch.Tensor, corpus: torch.Tensor, targets: Sequence[int] | torch.Tensor) -> dict:
    """Each query has one right answer, corpus row ``targets[i]``: recall@1, recall@5 and mean reciprocal rank."""
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    sims = cosine_similarity_matrix(queries, corpus)  # (Q, N)
    right = sims.gather(1, targets[:, None])  # (Q, 1)
    rank = (sims > right).sum(1) + 1  # 1 = the right answer is the nearest
    return {
        "recall@1": float((rank <= 1).float().mean()),
        "recall@5": float((rank <= 5).float().mean()),
        "mrr": float((1.0 / rank.float()).mean()),
    }
