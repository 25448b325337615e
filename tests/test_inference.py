"""The encoder's inference path computes what the teaching classes compute."""

import pytest
import torch

from minibert import preset
from minibert.encoder import Encoder, inference, padded_state

CONFIGS = {
    "bert gelu": preset("bert-tiny", vocab_size=101),
    "bert gelu_tanh": preset("bert-tiny", vocab_size=101, activation="gelu_tanh"),
    "bert silu": preset("bert-tiny", vocab_size=101, activation="silu"),
    "modernbert": preset("modernbert-tiny", vocab_size=101, pad_token_id=0, local_attention=8),
    "eurobert": preset("eurobert-tiny", vocab_size=101),
}


def batch(config, B=3, T=21):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, config.vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 15:] = 0
    mask[2, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("name", CONFIGS)
def test_inference_path_equals_the_teaching_path(name):
    torch.manual_seed(0)
    model = Encoder(CONFIGS[name]).eval()
    ids, mask = batch(model.config)
    x = model.embeddings(ids)
    with torch.no_grad():
        assert inference.applies(model, x)
        fast = model(ids, mask).last_hidden_state
    with torch.enable_grad():  # autograd on: the encoder runs the teaching classes
        assert not inference.applies(model, x)
        taught = model(ids, mask).last_hidden_state
    real = mask.bool()
    assert (fast - taught)[real].abs().max() <= 1e-5  # the same function; only the q/k/v matmul blocks differ


def test_the_path_is_taken_only_when_nothing_is_differentiated():
    model = Encoder(CONFIGS["bert gelu"])
    x = torch.zeros(1, 2, model.config.hidden_size)
    with torch.no_grad():
        assert not inference.applies(model, x)  # training mode: dropout is on
        model.eval()
        assert inference.applies(model, x)
        assert not inference.applies(model, x, output_attentions=True)
        assert not inference.applies(model, x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not inference.applies(model, x)
        handle = model.layers[1].attn.register_forward_hook(lambda *args: None)
        assert not inference.applies(model, x)  # a hook on a layer sees that layer run
        handle.remove()
        assert inference.applies(model, x)


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "silu"])
def test_the_feed_forward_gives_the_same_activations_with_and_without_onednn(activation, onednn, monkeypatch):
    if onednn and not inference.ONEDNN:
        pytest.skip("this torch has no oneDNN matmul")
    monkeypatch.setattr(inference, "ONEDNN", onednn)
    torch.manual_seed(0)
    model = Encoder(preset("bert-tiny", vocab_size=101, activation=activation)).eval()
    ids, mask = batch(model.config)
    x = model.embeddings(ids)
    state = padded_state(mask, None, None)
    buffers: dict = {}
    with torch.no_grad():
        for block in model.layers:
            expected = block(x, state)[0]
            x = inference.block_forward(block, x, state, buffers)
            assert torch.allclose(x, expected, atol=1e-5)
    assert len(buffers) == (0 if onednn else 1)  # without oneDNN, one (B*T, I) buffer served both layers


def test_the_rotated_queries_and_keys_are_written_head_major():
    from minibert.encoder.attention import RotaryEmbedding, apply_rotary

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 5, 8, generator=g)  # (B, T, heads, D)
    cos, sin = RotaryEmbedding(8, 10_000.0)(torch.arange(7), torch.float32)  # (1, 1, T, D)
    out = inference.rotate(x, cos, sin)
    assert out.shape == (2, 5, 7, 8) and out.is_contiguous()
    expected = apply_rotary(x.transpose(1, 2), cos, sin)  # (B, heads, T, D)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(inference.rotate(x.double(), cos, sin), expected.double(), atol=1e-6)  # other dtypes
    buffer = torch.full((2, 5, 7, 8), float("nan"))
    assert inference.rotate(x, cos, sin, out=buffer) is buffer and torch.equal(buffer, out)  # into a given tensor
