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


# Randomised weights amplify float32 rounding layer by layer: transformers' own float32 logits differ from its
# float64 ones by about 1e-5 of their largest value, and another BLAS kernel or thread count moves either model by
# as much (up to 6e-6 of it measured). 3e-5 of the reference's largest value holds on any kernel and still catches a
# subtle mistake: a tanh GELU in the MLM head alone moves the logits by 1e-4 of it, a norm eps ten times too small
# by 5e-4, a rotary base 1% off by 2e-2.
REL_TOL = 3e-5


def assert_matches(got: torch.Tensor, ref: torch.Tensor, where: torch.Tensor | None = None, rel: float = REL_TOL):
    """Max |got - ref| (at ``where``) within ``rel`` of the reference's largest magnitude."""
    scale = (ref[where] if where is not None else ref).abs().max().item()
    diff = maxdiff(got, ref, where)
    assert diff <= rel * scale, f"max difference {diff:.3g} exceeds {rel:g} x {scale:.3g}"
