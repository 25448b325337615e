"""The encoder's inference path: the same function as the teaching classes, with fewer trips through memory.

:class:`minibert.encoder.Encoder` takes this path when its blocks are the package's
:class:`~minibert.encoder.EncoderBlock` (not a subclass, not a block of your own: those run their own forward),
nothing will be differentiated (no autograd, no autocast, eval mode, weights and activations of one dtype), its
attention probabilities are not asked for and no forward hook watches its layers (hooks see the teaching classes
run). It reads the same parameters as :class:`~minibert.encoder.EncoderBlock` and gives the same outputs
(tests/test_inference.py), and it is kept apart so that the classes a learner reads stay as the papers write them.
What it does differently, measured on a CPU (bert-base, batch 8, one thread):

- float32 matmuls on a CPU go through oneDNN instead of the default BLAS (:func:`onednn`): 1.77 s instead of
  1.93 s a forward pass at 8 x 128 tokens;
- queries, keys and values come from three matmuls on row blocks of ``Wqkv`` instead of one (BERT): each result
  is contiguous, which SDPA's CPU kernel reads faster than the strided thirds of one fused output (one attention
  layer, 8 x 128: 35.2 ms vs 37.4 ms); rotated queries and keys (ModernBERT, EuroBERT) are written straight into
  that layout (:func:`rotate`), beside the values, in one buffer that the whole pass reuses;
- the feed-forward's activation runs in place; where the matmul is not oneDNN's, it writes into one (B*T, I)
  buffer that the whole pass reuses: a fresh (B*T, I) tensor per layer is a large allocation that the system maps
  and faults in page by page every time (8 x 512 tokens: 50 MB per layer; 5.75 s vs 6.08 s a forward pass).
"""

from __future__ import annotations

import functools
import platform

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

from .attention import MultiHeadAttention, apply_rotary, attend
from .kernels import BatchState
from .layers import MLP, EncoderBlock

# The activations, overwriting their input (for GLU variants: their gate half)
IN_PLACE = {
    "gelu": torch.ops.aten.gelu_,
    "gelu_tanh": functools.partial(torch.ops.aten.gelu_, approximate="tanh"),
    "silu": torch.ops.aten.silu_,
    "geglu": torch.ops.aten.gelu_,
    "swiglu": torch.ops.aten.silu_,
}


def applies(model: nn.Module, x: torch.Tensor, output_attentions: bool = False) -> bool:
    """Whether ``model``'s forward pass on ``x`` may take this path: nothing keeps activations for a backward pass,
    and no hook expects to see the layers' own forward calls."""
    return (
        all(type(block) is EncoderBlock for block in model.layers)  # a block of your own runs its own forward
        and not model.training
        and not output_attentions
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled(x.device.type)
        and x.dtype == next(model.parameters()).dtype
        and not _hooked(model)
    )


def _hooked(model: nn.Module) -> bool:
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules() if m is not model)


def block_forward(block: EncoderBlock, x: torch.Tensor, state: BatchState, buffers: dict) -> torch.Tensor:
    """:meth:`EncoderBlock.forward` in eval mode (no dropout), with the faster attention and feed-forward below."""
    if block.pre_norm:
        x = x + attention(block.attn, block.attn_norm(x), state, buffers)
        return x + feed_forward(block.mlp, block.mlp_norm(x), buffers)
    x = block.attn_norm(x + attention(block.attn, x, state, buffers))
    return block.mlp_norm(x + feed_forward(block.mlp, x, buffers))


def attention(attn: MultiHeadAttention, x: torch.Tensor, state: BatchState, buffers: dict) -> torch.Tensor:
    """:meth:`MultiHeadAttention.forward` without probabilities: project, rotate, attend, merge."""
    B, T, _ = x.shape
    if attn.rotary is None:
        W, b = attn.Wqkv.weight, attn.Wqkv.bias
        sizes = (attn.q_size, attn.kv_size, attn.kv_size)
        biases = b.split(sizes) if b is not None else (None, None, None)
        q, k, v = (linear(x, w, bias).view(B, T, -1, attn.head_dim).transpose(1, 2) for w, bias in
                   zip(W.split(sizes), biases))  # fmt: skip
    else:
        H, KV = attn.num_heads, attn.kv_heads
        qkv = linear(x, attn.Wqkv.weight, attn.Wqkv.bias).view(B, T, H + 2 * KV, attn.head_dim)  # (B, T, H+2KV, D)
        heads = _buffer(buffers, (B, H + 2 * KV, T, attn.head_dim), x)  # (B, H+2KV, T, D)
        rotate(qkv[:, :, : H + KV], *state.rotary_angles(attn.rotary, T, x.device), out=heads[:, : H + KV])
        heads[:, H + KV :].copy_(qkv[:, :, H + KV :].transpose(1, 2))
        q, k, v = heads.split([H, KV, KV], dim=1)
    y, _ = attend(q, k, v, state, attn.window)  # (B, H, T, D)
    return linear(attn.merge(y), attn.Wo.weight, attn.Wo.bias)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`apply_rotary` on (B, T, heads, D) in float32, written straight into a contiguous (B, heads, T, D)
    tensor (``out``, or a new one): the layout SDPA reads fastest, without a separate copy into it."""
    cos, sin = cos.transpose(1, 2), sin.transpose(1, 2)  # (B or 1, T, 1, D)
    B, T, heads, D = x.shape
    if out is None:
        out = torch.empty(B, heads, T, D, dtype=x.dtype, device=x.device)
    if x.dtype != torch.float32:
        return out.copy_(apply_rotary(x.float(), cos, sin).transpose(1, 2))
    o1, o2 = out.transpose(1, 2).chunk(2, dim=-1)  # (B, T, heads, D/2) views of out
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[..., : D // 2], sin[..., : D // 2]
    torch.mul(x1, c, out=o1).addcmul_(x2, s, value=-1)  # x1 cos - x2 sin
    torch.mul(x2, c, out=o2).addcmul_(x1, s)  # x2 cos + x1 sin
    return out


def _buffer(buffers: dict, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of this shape that the layers of one forward pass share: each layer has used its
    contents before the next one overwrites them."""
    key = (shape, like.dtype, like.device)
    if key not in buffers:
        buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buffers[key]


def feed_forward(mlp: MLP, x: torch.Tensor, buffers: dict) -> torch.Tensor:
    """:meth:`MLP.forward`, with the (B*T, I) activation computed in place.

    Gated variants: the gate half is activated in place and multiplied by the other half. Where oneDNN computes
    the matmul, it writes a fresh tensor (it takes no ``out=``); elsewhere the matmul writes into a buffer that
    all the layers share.
    """
    x2 = x.reshape(-1, x.size(-1))  # (B*T, C)
    W, b = mlp.Wi.weight, mlp.Wi.bias
    if onednn(x):
        h = linear(x2, W, b)  # (B*T, I)
    else:
        h = _buffer(buffers, (x2.size(0), W.size(0)), x)  # (B*T, I)
        torch.mm(x2, W.t(), out=h) if b is None else torch.addmm(b, x2, W.t(), out=h)
    if mlp.gated:
        gate, up = h.chunk(2, dim=-1)  # (B*T, I) each, views of h
        IN_PLACE[mlp.activation](gate).mul_(up)
        h = gate
    else:
        IN_PLACE[mlp.activation](h)
    return linear(h, mlp.Wo.weight, mlp.Wo.bias).view(*x.shape[:-1], -1)  # (B, T, C)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN's matmul where :func:`onednn` says so."""
    if onednn(x):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


def _onednn_works() -> bool:
    """oneDNN's matmul on x86 CPUs (where it was measured), if this torch has it and it gives F.linear's answer."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return False
    try:
        x, w, b = torch.ones(2, 3), torch.ones(4, 3), torch.arange(4.0)
        return bool(torch.equal(torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""), F.linear(x, w, b)))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


ONEDNN = _onednn_works()


def onednn(x: torch.Tensor) -> bool:
    """Whether float32 matmuls on ``x`` go through oneDNN: on a CPU, where torch is built with it. On the course's
    test machine (AMD EPYC with AVX-512, one thread) oneDNN beat the default BLAS on every shape the benchmarks use,
    e.g. 8192 x 256 -> 768 30.1 ms vs 33.3 ms and bert-base's 1024 x 768 -> 2304 34.1 ms vs 36.5 ms; a bert-base
    forward pass at 8 x 128 tokens took 1.77 s instead of 1.93 s, at 8 x 512 8.00 s instead of 8.33 s."""
    return ONEDNN and x.dtype == torch.float32 and x.device.type == "cpu"
