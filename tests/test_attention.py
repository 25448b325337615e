"""Attention on its own: every kernel computes the same softmax(q k^T / sqrt(d)) v; masks; rotary positions."""

import math

import pytest
import torch

from minibert import preset
from minibert.encoder import (
    BatchState,
    MultiHeadAttention,
    RotaryEmbedding,
    apply_rotary,
    attend,
    attention_with_probs,
    combine_masks,
    padding_mask,
    rotate_half,
    sliding_window_mask,
)


def qkv(B=2, H=4, KV=4, T=13, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, h, T, D, generator=g) for h in (H, KV, KV)]


def by_hand(q, k, v, allowed=None):
    """The formula, one head at a time."""
    B, H, T, D = q.shape
    group = H // k.size(1)
    out = torch.empty_like(q)
    for b in range(B):
        for h in range(H):
            s = q[b, h] @ k[b, h // group].T / math.sqrt(D)
            if allowed is not None:
                s = s.masked_fill(~allowed[b], float("-inf"))
            out[b, h] = s.softmax(-1) @ v[b, h // group]
    return out


def test_the_explicit_formula_returns_probabilities_that_sum_to_one():
    q, k, v = qkv()
    y, p = attention_with_probs(q, k, v)
    assert torch.allclose(y, by_hand(q, k, v), atol=1e-5)
    assert p.shape == (2, 4, 13, 13) and torch.allclose(p.sum(-1), torch.ones(2, 4, 13))


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("padded", [False, True])
def test_every_kernel_equals_the_formula(kv_heads, padded):
    q, k, v = qkv(KV=kv_heads)
    mask = torch.ones(2, 13, dtype=torch.long)
    if padded:
        mask[1, 9:] = 0
    allowed = mask.bool()[:, None, :].expand(2, 13, 13)
    state = BatchState.of(padding_mask(mask))
    expected = by_hand(q, k, v, allowed)
    real = mask.bool()
    sdpa, none = attend(q, k, v, state)
    explicit, probs = attend(q, k, v, state, return_probs=True)
    assert none is None and probs.shape == (2, 4, 13, 13)
    for y in (sdpa, explicit):
        assert (y - expected).transpose(1, 2)[real].abs().max() <= 1e-5
    window = 6  # local layers: |i - j| <= 3
    local_allowed = allowed & sliding_window_mask(13, window)
    local, _ = attend(q, k, v, state, window=window)  # computed in blocks
    assert (local - by_hand(q, k, v, local_allowed)).transpose(1, 2)[real].abs().max() <= 1e-5


def test_an_unpadded_stream_attends_within_each_sequence():
    q, k, v = qkv(B=1, T=10)
    state = BatchState(cu_seqlens=[0, 4, 10])
    y, _ = attend(q, k, v, state)
    same = torch.zeros(10, 10, dtype=torch.bool)
    same[:4, :4] = same[4:, 4:] = True
    assert torch.allclose(y, by_hand(q, k, v, same[None]), atol=1e-5)
    with pytest.raises(ValueError, match="padded batch"):
        attend(q, k, v, state, return_probs=True)


def test_masks():
    assert padding_mask(torch.ones(2, 5, dtype=torch.long)) is None  # nothing padded: the mask-free kernels
    m = padding_mask(torch.tensor([[1, 1, 0]]))
    assert m.shape == (1, 1, 1, 3) and m.tolist() == [[[[True, True, False]]]]
    w = sliding_window_mask(5, 4)
    assert w[0].tolist() == [True, True, True, False, False] and torch.equal(w, w.T)
    assert combine_masks(None, None) is None and torch.equal(combine_masks(w, None), w)
    assert torch.equal(combine_masks(w, ~torch.eye(5, dtype=torch.bool)), w & ~torch.eye(5, dtype=torch.bool))
    state = BatchState.of(m)
    assert state.seq_ids.tolist() == [[1, 1, 0]]  # padding and real tokens: two groups


def test_rotary_positions_rotate_pairs_and_make_scores_relative():
    rope = RotaryEmbedding(8, 10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def at(x, pos):
        cos, sin = rope(torch.tensor([pos]), torch.float32)
        return apply_rotary(x, cos, sin)

    assert torch.allclose(at(q, 7).norm(), q.norm())  # a rotation keeps lengths
    assert torch.allclose(at(q, 0), q)  # position 0: no rotation
    score = lambda m, n: (at(q, m) * at(k, n)).sum()
    assert torch.allclose(score(5, 2), score(13, 10), atol=1e-5)  # only m - n matters
    cos, sin = rope(torch.arange(3), torch.float32)
    x = torch.randn(1, 1, 3, 8, generator=g)
    assert torch.allclose(apply_rotary(x, cos, sin), x * cos + rotate_half(x) * sin, atol=1e-6)


@pytest.mark.parametrize("name", ["bert-tiny", "modernbert-tiny", "eurobert-tiny"])
def test_the_layer_is_project_rotate_attend_merge(name):
    torch.manual_seed(0)
    config = preset(name, vocab_size=50, pad_token_id=0)
    layer = MultiHeadAttention(config).eval()
    x = torch.randn(2, 9, config.hidden_size)
    y, probs = layer(x, return_probs=True)
    assert y.shape == x.shape and probs.shape == (2, config.num_heads, 9, 9)
    W = layer.Wqkv.weight
    qs, ks = config.num_heads * config.head_dim, config.kv_heads * config.head_dim
    split = lambda w, b, h: torch.nn.functional.linear(x, w, b).view(2, 9, h, -1).transpose(1, 2)
    bias = layer.Wqkv.bias.split([qs, ks, ks]) if layer.Wqkv.bias is not None else (None, None, None)
    q, k, v = (
        split(w, b, h) for w, b, h in zip(W.split([qs, ks, ks]), bias, (config.num_heads, *[config.kv_heads] * 2))
    )
    if layer.rotary is not None:
        cos, sin = layer.rotary(torch.arange(9), torch.float32)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    expected = layer.Wo(by_hand(q, k, v).transpose(1, 2).reshape(2, 9, -1))
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.allclose(layer(x)[0], y, atol=1e-5)  # the SDPA path gives the same
