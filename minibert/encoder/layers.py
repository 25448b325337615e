"""The pieces of an encoder block: norms, the feed-forward network, embeddings and the block itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from .attention import MultiHeadAttention
from .kernels import BatchState

ACTIVATIONS = {
    "gelu": F.gelu,  # exact erf form, as BERT's checkpoints were trained with
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "geglu": F.gelu,  # gated variants: activation on the gate branch
    "swiglu": F.silu,
}


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang & Sennrich, 2019): LayerNorm without centring and without a bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def make_norm(config: EncoderConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.hidden_size, config.norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)


class MLP(nn.Module):
    """Position-wise feed-forward: Wo(act(Wi x)), or Wo(act(gate) * up) for the gated (GLU) variants.

    For GLU variants Wi's output rows are [gate | up], so one matmul computes both: the activation acts on the
    first half, as in ModernBERT's checkpoints (a Llama-style checkpoint's gate_proj then up_proj, concatenated).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.gated = config.gated
        width = 2 * config.intermediate_size if self.gated else config.intermediate_size
        self.Wi = nn.Linear(config.hidden_size, width, bias=config.mlp_bias)
        self.Wo = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.activation = config.activation
        self.act = ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.Wi(x)  # (B, T, I), or (B, T, 2I) for GLU variants
        if self.gated:
            gate, up = h.chunk(2, dim=-1)  # (B, T, I) each
            h = self.act(gate) * up
        else:
            h = self.act(h)
        return self.Wo(h)


class Embeddings(nn.Module):
    """Token + position + segment embeddings (Figure 2 of the BERT paper), then norm and dropout."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.pos_embeddings = None
        if config.position_embedding == "learned":
            self.pos_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.type_embeddings = None
        if config.type_vocab_size > 0:
            self.type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = make_norm(config) if config.embedding_norm else nn.Identity()
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        token_type_ids: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # (B, T) or (T,)
    ) -> torch.Tensor:
        x = self.tok_embeddings(input_ids)  # (B, T, C)
        if self.pos_embeddings is not None:
            if position_ids is None:
                position_ids = torch.arange(input_ids.size(1), device=input_ids.device)
            x = x + self.pos_embeddings(position_ids)
        if self.type_embeddings is not None:
            if token_type_ids is None:  # everything is segment A
                x = x + self.type_embeddings.weight[0]
            else:
                x = x + self.type_embeddings(token_type_ids)
        return self.dropout(self.norm(x))


class EncoderBlock(nn.Module):
    """Attention then feed-forward, each wrapped in a residual connection and a norm.

    post-LN (BERT):       x = norm(x + f(x))
    pre-LN (ModernBERT):  x = x + f(norm(x))
    """

    def __init__(self, config: EncoderConfig, layer: int = 0) -> None:
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        skip_first = self.pre_norm and layer == 0 and not config.first_layer_attn_norm
        self.attn_norm = nn.Identity() if skip_first else make_norm(config)
        self.attn = MultiHeadAttention(config, layer)
        self.mlp_norm = make_norm(config)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        state: BatchState | torch.Tensor | None = None,  # or a bool mask broadcastable to (B, H, T, T)
        return_probs: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            a, probs = self.attn(self.attn_norm(x), state, return_probs)
            x = x + self.dropout(a)
            x = x + self.dropout(self.mlp(self.mlp_norm(x)))
        else:
            a, probs = self.attn(x, state, return_probs)
            x = self.attn_norm(x + self.dropout(a))
            x = self.mlp_norm(x + self.dropout(self.mlp(x)))
        return x, probs
