"""The pieces of a block on their own: norms, the feed-forward network, embeddings, post-LN and pre-LN blocks."""

import pytest
import torch
import torch.nn.functional as F

from minibert import preset
from minibert.encoder import ACTIVATIONS, MLP, Embeddings, EncoderBlock, RMSNorm, make_norm


def test_rms_norm_is_x_over_its_rms_times_the_gain():
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * norm.weight
    assert torch.allclose(norm(x), expected, atol=1e-6)
    assert isinstance(make_norm(preset("eurobert-tiny")), RMSNorm)
    layernorm = make_norm(preset("modernbert-tiny"))
    assert isinstance(layernorm, torch.nn.LayerNorm) and layernorm.bias is None  # ModernBERT: no bias


@pytest.mark.parametrize("name", ["bert-tiny", "modernbert-tiny", "eurobert-tiny"])
def test_the_feed_forward_network(name):
    torch.manual_seed(0)
    config = preset(name, vocab_size=50, pad_token_id=0)
    mlp = MLP(config)
    x = torch.randn(2, 5, config.hidden_size)
    h = mlp.Wi(x)
    if config.gated:  # GLU: the activation gates the other half
        gate, up = h.split(config.intermediate_size, dim=-1)
        h = ACTIVATIONS[config.activation](gate) * up
    else:
        h = ACTIVATIONS[config.activation](h)
    assert torch.allclose(mlp(x), mlp.Wo(h), atol=1e-6)
    assert ACTIVATIONS["geglu"] is F.gelu and ACTIVATIONS["swiglu"] is F.silu


def test_embeddings_add_token_position_and_segment_then_normalise():
    torch.manual_seed(0)
    config = preset("bert-tiny", vocab_size=50, hidden_dropout=0.0)
    emb = Embeddings(config).eval()
    ids, types = torch.tensor([[3, 7, 9]]), torch.tensor([[0, 0, 1]])
    x = emb.tok_embeddings(ids) + emb.pos_embeddings(torch.arange(3)) + emb.type_embeddings(types)
    assert torch.allclose(emb(ids, types), emb.norm(x), atol=1e-6)
    assert torch.allclose(emb(ids), emb(ids, torch.zeros_like(ids)))  # no segments given: all segment A
    rope = Embeddings(preset("modernbert-tiny", vocab_size=50, pad_token_id=0))
    assert rope.pos_embeddings is None and rope.type_embeddings is None  # rotary positions live in attention


def test_post_ln_and_pre_ln_blocks():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 128)
    post = EncoderBlock(preset("bert-tiny")).eval()
    a = post.attn(x)[0]
    h = post.attn_norm(x + a)
    assert torch.allclose(post(x)[0], post.mlp_norm(h + post.mlp(h)), atol=1e-5)  # norm(x + f(x))
    config = preset("modernbert-tiny")
    pre = EncoderBlock(config, layer=1).eval()
    h = x + pre.attn(pre.attn_norm(x))[0]
    assert torch.allclose(pre(x)[0], h + pre.mlp(pre.mlp_norm(h)), atol=1e-5)  # x + f(norm(x))
    assert isinstance(EncoderBlock(config, layer=0).attn_norm, torch.nn.Identity)  # ModernBERT's first layer
    assert not isinstance(EncoderBlock(preset("eurobert-tiny"), layer=0).attn_norm, torch.nn.Identity)
