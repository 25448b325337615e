"""One config describes every encoder in the course.

BERT, ModernBERT and EuroBERT differ in a handful of switches (where the norm sits, which norm, which
activation, how positions are encoded, which layers attend locally, biases, key/value heads), so they are
presets of :class:`EncoderConfig`, never separate model classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 30522  # rows of the token embedding (and of the MLM decoder)
    hidden_size: int = 768  # width of the residual stream, d_model
    num_layers: int = 12  # encoder blocks
    num_heads: int = 12  # query heads
    num_kv_heads: int | None = None  # key/value heads; None = num_heads, fewer = grouped-query attention
    intermediate_size: int = 3072  # hidden width of the feed-forward block (per branch for GLU variants)
    max_position_embeddings: int = 512  # longest sequence the model takes
    type_vocab_size: int = 2  # segment (token type) embeddings; 0 = none
    position_embedding: Literal["learned", "rope"] = "learned"  # absolute table or rotary
    rope_theta: float = 10000.0  # rotary base on global layers
    local_rope_theta: float | None = None  # rotary base on local layers (None = rope_theta)
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-12
    norm_bias: bool = True  # LayerNorm with a bias term
    norm_position: Literal["post", "pre"] = "post"  # post-LN (BERT) or pre-LN (ModernBERT, EuroBERT)
    embedding_norm: bool = True  # norm right after the embedding sum
    first_layer_attn_norm: bool = True  # pre-LN: ModernBERT has no norm before layer 0's attention
    final_norm: bool = False  # norm after the last block (pre-LN models)
    activation: Literal["gelu", "gelu_tanh", "silu", "geglu", "swiglu"] = "gelu"  # *glu = gated
    attention_bias: bool = True  # biases in the q/k/v and output projections
    mlp_bias: bool = True  # biases in the feed-forward projections
    global_attn_every_n_layers: int = 1  # 1 = every layer global; 3 = layers 0, 3, 6, ... global
    local_attention: int = 0  # total window of local layers (ModernBERT: 128 = 64 each side); 0 = none
    pooler: bool = True  # tanh dense layer on [CLS] (BERT's pooled output)
    nsp: bool = True  # next-sentence-prediction head in the pretraining model
    head_transform: bool = True  # MLM head: dense + activation + norm before the decoder; False = decoder only
    head_norm: bool = True  # norm inside the MLM head's transform
    head_bias: bool = True  # bias in the MLM head's transform dense layer
    head_activation: Literal["gelu", "gelu_tanh", "silu"] | None = None  # None = same as activation (non-GLU)
    tie_word_embeddings: bool = True  # MLM decoder shares the token embedding matrix
    decoder_bias: bool = True  # bias on the MLM decoder
    pad_token_id: int = 0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    unpad: bool = False  # run padded batches without their padding (ModernBERT): no compute spent on it

    def __post_init__(self) -> None:
        kv = self.kv_heads
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % kv:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {kv}")
        if self.global_attn_every_n_layers > 1 and self.local_attention < 2:
            raise ValueError("local layers need local_attention >= 2 (the whole window in tokens, e.g. 128)")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"pad_token_id {self.pad_token_id} is outside the vocabulary (0..{self.vocab_size - 1}); "
                "pass your tokenizer's, e.g. preset(name, vocab_size=..., pad_token_id=tokenizer.pad_token_id)"
            )
        if self.first_layer_attn_norm is False and self.norm_position == "post":
            raise ValueError("first_layer_attn_norm=False only makes sense with norm_position='pre'")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def gated(self) -> bool:
        return self.activation in ("geglu", "swiglu")

    def is_global(self, layer: int) -> bool:
        """Whether `layer` attends to the whole sequence (else a sliding window)."""
        return self.global_attn_every_n_layers <= 1 or layer % self.global_attn_every_n_layers == 0

    def replace(self, **changes) -> EncoderConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {unknown}")
        return cls(**d)


def pad_vocab_size(n: int, multiple: int = 64) -> int:
    """Round a vocabulary size up to a multiple of 64: the embedding and decoder matmuls run faster (ModernBERT)."""
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class Family:
    """What makes an encoder a BERT, a ModernBERT or a EuroBERT, written once.

    ``switches`` are the architecture: a config is of this family exactly when it has them (plus one of
    ``activations`` and equal values for each pair in ``equal``). ``defaults`` are the published models' remaining
    choices, which a checkpoint's own config may change (norm epsilon, biases, rotary bases, vocabulary, ...).
    Presets, the conversion from transformers configs and the detection of a config's family all read this.
    """

    name: str  # transformers' model_type
    title: str  # as the papers write it
    switches: dict  # the fields that define the family
    activations: tuple[str, ...]  # the feed-forward activations the family uses
    defaults: dict = dataclasses.field(default_factory=dict)  # the published models' values of other fields
    equal: tuple[tuple[str, str], ...] = ()  # pairs of fields the family keeps equal

    def config(self, **fields) -> EncoderConfig:
        """A config of this family: its switches and defaults, then ``fields`` (sizes, a checkpoint's values)."""
        clash = {k: v for k, v in fields.items() if k in self.switches and v != self.switches[k]}
        if clash:
            raise ValueError(f"{clash} would not be a {self.title}: these fields define the family")
        return EncoderConfig(**{**self.defaults, **self.switches, **fields})

    def differences(self, config: EncoderConfig) -> dict:
        """The fields of ``config`` that keep it from being of this family (empty when it is one)."""
        diff = {k: getattr(config, k) for k, v in self.switches.items() if getattr(config, k) != v}
        if config.activation not in self.activations:
            diff["activation"] = config.activation
        diff |= {f"{a} != {b}": (getattr(config, a), getattr(config, b))
                 for a, b in self.equal if getattr(config, a) != getattr(config, b)}  # fmt: skip
        return diff

    def matches(self, config: EncoderConfig) -> bool:
        return not self.differences(config)


# Devlin et al. (2018): post-LN, learned absolute positions, GELU, biases everywhere, segments, pooler and NSP.
BERT = Family(
    "bert",
    "BERT",
    switches=dict(
        num_kv_heads=None, position_embedding="learned", norm="layernorm", norm_bias=True, norm_position="post",
        embedding_norm=True, final_norm=False, attention_bias=True, mlp_bias=True, global_attn_every_n_layers=1,
        pooler=True, nsp=True, head_transform=True, head_norm=True, head_bias=True, tie_word_embeddings=True,
        decoder_bias=True,
    ),
    activations=("gelu", "gelu_tanh"),
)  # fmt: skip

# ModernBERT (Warner et al., 2024): every difference from BERT is named here.
MODERNBERT = Family(
    "modernbert",
    "ModernBERT",
    switches=dict(
        num_kv_heads=None,
        type_vocab_size=0,  # no segments: no next-sentence prediction
        position_embedding="rope",
        norm="layernorm",
        norm_position="pre",
        embedding_norm=True,
        first_layer_attn_norm=False,  # the embedding norm already normalises layer 0's input
        final_norm=True,
        pooler=False,
        nsp=False,
        head_transform=True,
        head_norm=True,
    ),
    activations=("geglu", "swiglu"),
    defaults=dict(
        vocab_size=50368,  # its BPE vocabulary (50,280 tokens and unused slots) padded to 787 x 64
        max_position_embeddings=8192,
        rope_theta=160_000.0,  # global layers: long range
        local_rope_theta=10_000.0,  # local layers only ever see 64 tokens each way
        norm_eps=1e-5,
        norm_bias=False,
        activation="geglu",
        attention_bias=False,
        mlp_bias=False,
        global_attn_every_n_layers=3,
        local_attention=128,
        head_bias=False,
        head_activation="gelu",
        pad_token_id=50283,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        unpad=True,  # run padded batches without their padding
    ),
)

# EuroBERT (Boizard et al., 2025): a Llama-style stack, read bidirectionally.
EUROBERT = Family(
    "eurobert",
    "EuroBERT",
    switches=dict(
        type_vocab_size=0,  # no segments: no next-sentence prediction
        position_embedding="rope",
        local_rope_theta=None,
        norm="rmsnorm",  # no centring, no bias: cheaper, and as stable in pre-norm stacks
        norm_position="pre",
        embedding_norm=False,  # layer 0's own attention norm normalises the embeddings
        first_layer_attn_norm=True,
        final_norm=True,
        activation="swiglu",
        global_attn_every_n_layers=1,
        pooler=False,
        nsp=False,
        head_transform=False,  # the decoder reads the final norm directly
    ),
    activations=("swiglu",),
    defaults=dict(
        vocab_size=128256,  # Llama 3's multilingual BPE vocabulary
        max_position_embeddings=8192,
        rope_theta=250_000.0,  # long range for 8k-token contexts
        norm_eps=1e-5,
        norm_bias=False,
        attention_bias=False,
        mlp_bias=False,
        head_bias=False,
        tie_word_embeddings=False,  # an output layer of its own
        decoder_bias=False,
        pad_token_id=128001,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    ),
    equal=(("decoder_bias", "mlp_bias"),),  # transformers gives lm_head the MLP's bias switch
)

FAMILIES: dict[str, Family] = {f.name: f for f in (BERT, MODERNBERT, EUROBERT)}


def family_of(config: EncoderConfig) -> str | None:
    """ "bert", "modernbert" or "eurobert": the family whose switches ``config`` has (None for a hybrid)."""
    return next((name for name, f in FAMILIES.items() if f.matches(config)), None)


def _bert(layers: int, hidden: int, heads: int) -> EncoderConfig:
    return BERT.config(num_layers=layers, hidden_size=hidden, num_heads=heads, intermediate_size=4 * hidden)


def _modernbert(layers: int, hidden: int, heads: int, intermediate: int) -> EncoderConfig:
    return MODERNBERT.config(num_layers=layers, hidden_size=hidden, num_heads=heads, intermediate_size=intermediate)


def _eurobert(layers: int, hidden: int, heads: int, kv_heads: int, intermediate: int, **kw) -> EncoderConfig:
    return EUROBERT.config(
        num_layers=layers, hidden_size=hidden, num_heads=heads, num_kv_heads=kv_heads, intermediate_size=intermediate,
        **kw,
    )  # fmt: skip


PRESETS: dict[str, EncoderConfig] = {
    # Devlin et al. (2018), Table "BERT_BASE" and "BERT_LARGE"
    "bert-base": _bert(12, 768, 12),
    "bert-large": _bert(24, 1024, 16),
    # The compact BERTs of Turc et al. (2019): sizes a laptop CPU trains in minutes
    "bert-medium": _bert(8, 512, 8),
    "bert-small": _bert(4, 512, 8),
    "bert-mini": _bert(4, 256, 4),
    "bert-tiny": _bert(2, 128, 2),
    # all-MiniLM-L6-v2 (the real weights the course ships): 6 x 384 with 12 heads
    "minilm-l6": BERT.config(num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536),
    # answerdotai/ModernBERT-base and -large: deep and narrow (22 x 768, 28 x 1024)
    "modernbert-base": _modernbert(22, 768, 12, 1152),
    "modernbert-large": _modernbert(28, 1024, 16, 2624),
    # CPU sizes, deep-and-narrow like the originals, with about the non-embedding parameters of
    # bert-small / bert-mini / bert-tiny respectively
    "modernbert-small": _modernbert(12, 384, 6, 576),
    "modernbert-mini": _modernbert(6, 256, 4, 384),
    "modernbert-tiny": _modernbert(3, 128, 2, 192),
    # EuroBERT/EuroBERT-210m, -610m and -2.1B
    "eurobert-210m": _eurobert(12, 768, 12, 12, 3072),
    "eurobert-610m": _eurobert(26, 1152, 18, 6, 4096),
    "eurobert-2.1b": _eurobert(32, 2304, 18, 6, 6144),
    # CPU sizes with the 610m/2.1B head ratio (3 query heads per key/value head), for a vocabulary of your own
    "eurobert-small": _eurobert(8, 384, 6, 2, 1024, vocab_size=8192, pad_token_id=0),
    "eurobert-mini": _eurobert(4, 192, 6, 2, 512, vocab_size=8192, pad_token_id=0),
    "eurobert-tiny": _eurobert(2, 96, 6, 2, 256, vocab_size=8192, pad_token_id=0),
}


def preset(name: str, **overrides) -> EncoderConfig:
    """A named preset, optionally with some fields changed (e.g. ``vocab_size`` of your own vocabulary)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
