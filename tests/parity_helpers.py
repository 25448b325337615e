"""What the parity tests of every architecture share: randomised reference weights, padded batches, differences."""

import torch


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights far from their initial values (norm gains and biases too), so a wrong wiring shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 1.0) + (1.0 if p.dim() == 1 else 0))
    return model.eval()


def padded_batch(lengths: tuple[int, ...], low: int, vocab: int = 128, seed: int = 0):
    """Random ids >= low (below them sit the special tokens), one row per length, padded with id 0 to the first."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(low, vocab, (len(lengths), lengths[0]), generator=g)
    mask = torch.ones_like(ids)
    for row, n in enumerate(lengths):
        mask[row, n:] = 0
    ids[mask == 0] = 0
    return ids, mask


def maxdiff(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    d = (a - b).abs()
    return (d[where] if where is not None else d).max().item()
