"""The encoder and its pretraining heads: one model for BERT, ModernBERT and EuroBERT, shaped by :class:`EncoderConfig`.

The classification head is chapter 08's: :class:`minibert.finetune.EncoderForSequenceClassification`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..config import EncoderConfig
from . import inference
from .batch import padded_state, positions_in_documents, unpad_batch
from .layers import ACTIVATIONS, Embeddings, EncoderBlock, make_norm


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor  # (B, T, C)
    pooler_output: torch.Tensor | None = None  # (B, C): tanh(W h_[CLS] + b), BERT only
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings, then each block's output
    attentions: tuple[torch.Tensor, ...] | None = None  # each block's probabilities, (B, H, T, T)


@dataclass
class PreTrainingOutput:
    mlm_logits: torch.Tensor  # (B, T, V), or (N, V) at the N masked positions
    nsp_logits: torch.Tensor | None  # (B, 2): is segment B the real continuation of A?
    encoder: EncoderOutput


def check_inputs(
    config: EncoderConfig,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    document_ids: torch.Tensor | None = None,
) -> None:
    """Refuse inputs that would otherwise give a silent wrong answer or an obscure index error."""
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}; "
            "for one sequence use input_ids[None]"
        )
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"input_ids must be integer token ids (torch.long), got {input_ids.dtype}")
    T = input_ids.size(1)
    if T == 0 and input_ids.size(0):
        raise ValueError(
            f"input_ids has shape {tuple(input_ids.shape)}: the sequences are empty; every sequence needs at least "
            "one token (a tokenizer adds [CLS] and [SEP] even to an empty text)"
        )
    if config.position_embedding == "learned" and T > config.max_position_embeddings:
        raise ValueError(
            f"sequence of {T} tokens is longer than the model's {config.max_position_embeddings} positions; "
            f"truncate it (e.g. tokenizer(..., truncation=True, max_length={config.max_position_embeddings}))"
        )
    if input_ids.numel():
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"token id {bad} is outside the vocabulary (0..{config.vocab_size - 1}); were these ids made "
                "with another tokenizer, or does the config's vocab_size not match the vocabulary?"
            )
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(input_ids.shape)}; "
                "they must match"
            )
        if attention_mask.numel() and bool(((attention_mask != 0) & (attention_mask != 1)).any()):
            bad = attention_mask[(attention_mask != 0) & (attention_mask != 1)][0].item()
            raise ValueError(f"attention_mask holds {bad}; use 1 for a token and 0 for padding")
    if token_type_ids is not None:
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids has shape {tuple(token_type_ids.shape)}, input_ids {tuple(input_ids.shape)}"
            )
        if token_type_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"token_type_ids must be integer segment numbers (torch.long), got {token_type_ids.dtype}")
        low, top = (int(v) for v in torch.aminmax(token_type_ids)) if token_type_ids.numel() else (0, 0)
        if low < 0:
            raise ValueError(
                f"token_type_ids holds {low}; segment numbers start at 0: 0 for the first text, 1 for the second"
            )
        if config.type_vocab_size == 0 and top > 0:  # all zeros is one segment: what such a model sees anyway
            raise ValueError("this model has no segment embeddings; do not pass token_type_ids")
        if config.type_vocab_size > 0 and top >= config.type_vocab_size:
            raise ValueError(
                f"token_type_ids go up to {top}, the model has "
                f"{config.type_vocab_size} segments (0..{config.type_vocab_size - 1})"
            )
    if document_ids is not None:
        if document_ids.shape != input_ids.shape:
            raise ValueError(
                f"document_ids has shape {tuple(document_ids.shape)}, input_ids {tuple(input_ids.shape)}; "
                "give one document number per token"
            )
        if document_ids.numel() and int(document_ids.min()) < 0:
            raise ValueError("document_ids must be >= 0 (mark padding with attention_mask, not with negative ids)")


BlockFactory = Callable[[EncoderConfig, int], nn.Module]  # (config, layer index) -> a block


class Encoder(nn.Module):
    """Embeddings, a stack of blocks, an optional final norm and (BERT) the pooler.

    With ``config.unpad`` (ModernBERT) a padded batch runs as one stream of its real tokens: the padding costs
    nothing in any layer, and the outputs are padded again (with zeros) at the end.

    ``block`` swaps the blocks for your own: a class or function called as ``block(config, layer)`` for each layer
    (e.g. ``lambda config, layer: MyBlock(config.hidden_size, config.num_heads, config.intermediate_size)``). Such
    a block's forward takes ``(x, mask)``: x (B, T, C) and a bool mask broadcastable to (B, H, T, T), True where a
    query may attend to a key, or None when nothing is padded; it returns x (B, T, C), or ``(x, probs)``. Accepting
    a ``return_probs`` keyword makes ``output_attentions`` work. The package's :class:`EncoderBlock` gets the whole
    :class:`BatchState` (unpadded streams, rotary positions, local windows); other blocks run on the padded batch.
    The weights of every ``nn.Linear``, ``nn.Embedding`` and norm are initialised as BERT's.
    """

    def __init__(self, config: EncoderConfig, block: BlockFactory | None = None) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        make_block = EncoderBlock if block is None else block
        self.layers = nn.ModuleList(make_block(config, i) for i in range(config.num_layers))
        self.custom_blocks = any(type(b) is not EncoderBlock for b in self.layers)
        self.final_norm = make_norm(config) if config.final_norm else nn.Identity()
        self.pooler = Pooler(config) if config.pooler else None
        self.apply(lambda m: init_weights(m, config))
        if config.norm_position == "pre":  # residual branches add up over depth: scale their outputs down
            for block in self.layers:
                if isinstance(block, EncoderBlock):
                    for proj in (block.attn.Wo, block.mlp.Wo):
                        nn.init.normal_(proj.weight, std=config.initializer_range / math.sqrt(2 * config.num_layers))

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T), 1 = token, 0 = padding
        token_type_ids: torch.Tensor | None = None,  # (B, T), segment A = 0, B = 1
        position_ids: torch.Tensor | None = None,  # (B, T) or (T,)
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        document_ids: torch.Tensor | None = None,  # (B, T): packed documents attend only within themselves
        unpad: bool | None = None,  # None = config.unpad; attention probabilities need the padded path
    ) -> EncoderOutput:
        check_inputs(self.config, input_ids, attention_mask, token_type_ids, document_ids)
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # nothing is padded: take the mask-free kernels
        if document_ids is not None and position_ids is None:
            position_ids = positions_in_documents(document_ids)  # each document starts at position 0
        elif position_ids is None and self.config.position_embedding == "rope":
            position_ids = torch.arange(input_ids.size(1), device=input_ids.device)  # one tensor for all layers
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (B, T, C)
        unpad = (self.config.unpad if unpad is None else unpad) and not self.custom_blocks  # they take a padded batch
        unpadded = None
        if unpad and not output_attentions and (attention_mask is not None or document_ids is not None):
            x, unpadded = unpad_batch(x, attention_mask, document_ids, position_ids)  # (1, N, C)
            state = unpadded.state
        else:
            state = padded_state(attention_mask, document_ids, position_ids)
        fast = inference.applies(self, x, output_attentions)  # the same function with fewer trips through memory
        buffers: dict = {}  # the inference path's activation buffer, shared by the layers
        hidden, attentions = [x], []
        for block in self.layers:
            if fast:
                x, probs = inference.block_forward(block, x, state, buffers), None
            elif type(block) is EncoderBlock:
                x, probs = block(x, state, return_probs=output_attentions)
            else:
                x, probs = _run_block(block, x, state.mask, output_attentions)
            hidden.append(x)
            attentions.append(probs)
        x = self.final_norm(x)
        if unpadded is not None:
            x = unpadded.pad(x)  # (B, T, C)
            hidden = [unpadded.pad(h) for h in hidden] if output_hidden_states else hidden
        return EncoderOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _run_block(block: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool):
    """A block of another design: ``block(x, mask)`` -> x or (x, probs)."""
    shape = x.shape
    if output_attentions:
        if "return_probs" not in inspect.signature(block.forward).parameters:
            raise ValueError(
                f"output_attentions: {type(block).__name__}.forward has no return_probs argument; add one and "
                "return (x, probs) when it is True"
            )
        out = block(x, mask, return_probs=True)
    else:
        out = block(x, mask)
    x, probs = out if isinstance(out, tuple) else (out, None)
    if not isinstance(x, torch.Tensor) or x.shape != shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{type(block).__name__} returned {got}; a block maps (B, T, C) {tuple(shape)} to the same shape"
        )
    return x, probs


class Pooler(nn.Module):
    """BERT's pooled output: tanh(W h_[CLS] + b), trained by next-sentence prediction."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # (B, C)


class MLMHead(nn.Module):
    """Transform (dense, activation, norm) then a decoder onto the vocabulary, tied to the token embeddings.

    EuroBERT (``head_transform=False``, ``tie_word_embeddings=False``) keeps only an untied decoder.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        transform = config.head_transform  # BERT, ModernBERT; EuroBERT decodes the final norm's output directly
        act = config.head_activation or ("gelu" if config.gated else config.activation)
        self.dense = (
            nn.Linear(config.hidden_size, config.hidden_size, bias=config.head_bias) if transform else nn.Identity()
        )
        self.act = ACTIVATIONS[act] if transform else (lambda x: x)
        self.norm = make_norm(config) if transform and config.head_norm else nn.Identity()
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=config.decoder_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(x))))


class EncoderForPreTraining(nn.Module):
    """The encoder with its pretraining heads: masked-language modelling and (BERT) next-sentence prediction."""

    def __init__(self, config: EncoderConfig, block: BlockFactory | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, block)  # block: your own blocks (see Encoder)
        self.mlm_head = MLMHead(config)
        self.nsp_head = nn.Linear(config.hidden_size, 2) if config.nsp else None
        for m in (self.mlm_head, self.nsp_head):
            if m is not None:
                m.apply(lambda mod: init_weights(mod, config))
        if config.tie_word_embeddings:
            self.mlm_head.decoder.weight = self.encoder.embeddings.tok_embeddings.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,  # (B, T) bool: score the vocabulary only here
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        document_ids: torch.Tensor | None = None,
        unpad: bool | None = None,
    ) -> PreTrainingOutput:
        out = self.encoder(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            output_hidden_states,
            output_attentions,
            document_ids=document_ids,
            unpad=unpad,
        )
        h = out.last_hidden_state  # (B, T, C)
        if masked_positions is not None:
            h = h[masked_positions]  # (N, C): the decoder is most of the cost, so skip unmasked positions
        nsp = None
        if self.nsp_head is not None:
            pooled = out.pooler_output if out.pooler_output is not None else out.last_hidden_state[:, 0]
            nsp = self.nsp_head(pooled)
        return PreTrainingOutput(mlm_logits=self.mlm_head(h), nsp_logits=nsp, encoder=out)


def init_weights(module: nn.Module, config: EncoderConfig) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, unit norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif hasattr(module, "weight") and isinstance(module.weight, nn.Parameter) and module.weight.dim() == 1:
        nn.init.ones_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
