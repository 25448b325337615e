"""Transformers' names and minibert's: one table per family, read left to right to load and right to left to save.

A weight table pairs module paths, transformers' first: ``("bert.encoder.layer.{i}.output.dense",
"encoder.layers.{i}.mlp.Wo")``. ``{i}`` stands for a layer index, and what follows a path (``.weight``, ``.bias``)
carries over. Two things are not renames: minibert fuses matrices that transformers keeps apart (``Wqkv`` stacks
the rows of query, key and value; EuroBERT's ``Wi`` those of gate and up), and transformers saves buffers that
minibert recomputes (position ids, rotary frequencies). Config fields pair the same way: (transformers key, field).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..config import EncoderConfig, Family

Pairs = tuple[tuple[str, str], ...]  # (transformers' name, minibert's name)
StateDict = dict[str, torch.Tensor]


@functools.cache
def _regex(path: str) -> re.Pattern:
    """``path`` as a pattern that matches it and every key below it: "a.b" matches "a.b" and "a.b.weight"."""
    return re.compile(re.escape(path).replace(r"\{i\}", r"(?P<i>\d+)") + r"(?P<rest>\..+)?")


def translate(key: str, source: str, target: str) -> str | None:
    """``key`` moved from path ``source`` to path ``target``, keeping its layer index and suffix; None if no match."""
    m = _regex(source).fullmatch(key)
    if m is None:
        return None
    return target.replace("{i}", m.groupdict().get("i") or "") + (m["rest"] or "")


def _first(key: str, pairs: Iterable[tuple[str, str]]) -> str | None:
    return next((new for source, target in pairs if (new := translate(key, source, target)) is not None), None)


def fused_rows(matrix: str, config: EncoderConfig) -> list[int]:
    """The row blocks of minibert's fused matrices: ``Wqkv`` is (q | k | v), a gated ``Wi`` is (gate | up)."""
    if matrix.endswith("attn.Wqkv"):
        q, kv = config.num_heads * config.head_dim, config.kv_heads * config.head_dim
        return [q, kv, kv]
    if matrix.endswith("mlp.Wi"):
        return [config.intermediate_size] * 2
    raise ValueError(f"{matrix} is not one of minibert's fused matrices (attn.Wqkv, mlp.Wi)")


_TF_ERA = re.compile(r"\.(gamma|beta)$")  # LayerNorm weights in checkpoints converted from TensorFlow


@dataclass(frozen=True)
class Format:
    """A transformers ``model_type``: its config conversion both ways and its weight names.

    State dicts on minibert's side are rooted at EncoderForPreTraining ("encoder.", "mlm_head.", "nsp_head.",
    "classifier."); on transformers' side at its pretraining or masked-LM class ("bert.", "cls." or "model.",
    "lm_head."). The bare model's keys (BertModel, ModernBertModel) lack the ``base`` prefix; loading accepts both.
    """

    family: Family
    config_from_hf: Callable[[dict], EncoderConfig]
    config_to_hf: Callable[[EncoderConfig], dict]
    renames: Pairs  # tried in order: the first match wins (both ways)
    fused: tuple[tuple[str, tuple[str, ...]], ...] = ()  # minibert's matrix, the transformers matrices it stacks
    base: str = ""  # the bare model's prefix in transformers' names ("bert", "model")
    ignored: tuple[str, ...] = ()  # endings of buffers transformers may save and minibert recomputes

    def state_dict_to_minibert(self, sd: StateDict) -> tuple[StateDict, list[str]]:
        """``sd`` in minibert's names, and what did not fit: unknown keys, missing parts of fused matrices."""
        out: StateDict = {}
        stacks: dict[str, dict[int, torch.Tensor]] = {}  # fused minibert name -> its parts by position
        unknown: list[str] = []
        for key, value in sd.items():
            if key.endswith(self.ignored):
                continue
            for name in self._spellings(key):
                if (mine := _first(name, self.renames)) is not None:
                    out[mine] = value
                    break
                if (part := self._fused_part(name)) is not None:
                    stacks.setdefault(part[0], {})[part[1]] = value
                    break
            else:
                unknown.append(key)
        for name, got in stacks.items():
            parts = self._parts_of(name)
            if len(got) < len(parts):
                absent = [p for j, p in enumerate(parts) if j not in got]
                unknown.append(f"{name} needs {absent}, which the checkpoint lacks")
                continue
            out[name] = torch.cat([got[j] for j in range(len(parts))])  # rows (q | k | v) or (gate | up)
        return out, unknown

    def state_dict_to_hf(self, sd: StateDict, config: EncoderConfig) -> StateDict:
        """The inverse: minibert's state dict in transformers' names (a tied decoder weight left out, as it saves)."""
        out: StateDict = {}
        for key, value in sd.items():
            if key == "mlm_head.decoder.weight" and config.tie_word_embeddings:
                continue  # the word embedding matrix
            if (theirs := _first(key, ((mine, theirs) for theirs, mine in self.renames))) is not None:
                out[theirs] = value
                continue
            if (fused := self._fused_of(key)) is None:
                raise KeyError(f"no {self.family.title} name for {key}")
            mine, parts = fused
            for part, rows in zip(parts, value.split(fused_rows(mine, config))):
                out[translate(key, mine, part)] = rows
        return out

    def _spellings(self, key: str) -> list[str]:
        """``key`` as the table writes it: TensorFlow's LayerNorm names read as PyTorch's; with the bare model's
        prefix added when it lacks one."""
        key = _TF_ERA.sub(lambda m: ".weight" if m[1] == "gamma" else ".bias", key)
        return [key] if not self.base or key.startswith(self.base + ".") else [key, f"{self.base}.{key}"]

    def _fused_part(self, key: str) -> tuple[str, int] | None:
        """(the fused minibert name, the position of ``key`` in it), if ``key`` is part of a fused matrix."""
        for mine, parts in self.fused:
            for j, part in enumerate(parts):
                if (name := translate(key, part, mine)) is not None:
                    return name, j
        return None

    def _fused_of(self, key: str) -> tuple[str, tuple[str, ...]] | None:
        """The entry of ``fused`` whose minibert matrix ``key`` is a weight of."""
        return next(((mine, parts) for mine, parts in self.fused if _regex(mine).fullmatch(key)), None)

    def _parts_of(self, key: str) -> list[str]:
        """The transformers names of the parts of the fused minibert weight ``key``, in order."""
        mine, parts = self._fused_of(key)
        return [translate(key, mine, part) for part in parts]


# ---------------------------------------------------------------------------------------------------------------
# Config fields

SIZES: Pairs = (
    ("vocab_size", "vocab_size"),
    ("hidden_size", "hidden_size"),
    ("num_hidden_layers", "num_layers"),
    ("num_attention_heads", "num_heads"),
    ("intermediate_size", "intermediate_size"),
)  # every family's config has them, under these names
_COMMON: Pairs = SIZES + (
    ("max_position_embeddings", "max_position_embeddings"),
    ("initializer_range", "initializer_range"),
)


def fields_from_hf(d: dict, fields: Pairs) -> dict:
    """minibert's fields that transformers' config ``d`` sets: the sizes (required), the common and ``fields``.

    A field the config leaves out keeps the family's default (``Family.config`` fills it in).
    """
    missing = [theirs for theirs, _ in SIZES if theirs not in d]
    if missing:
        raise ValueError(f"the config has no {missing}: is it a transformers model config (config.json)?")
    return {mine: d[theirs] for theirs, mine in _COMMON + fields if theirs in d}


def fields_to_hf(config: EncoderConfig, family: Family, architecture: str, fields: Pairs) -> dict:
    """The start of transformers' config for ``config``; refuses a config that is not of ``family``."""
    diff = family.differences(config)
    if diff:
        raise ValueError(f"this config is not a {family.title} (it sets {diff}); it cannot be saved as {architecture}")
    return {
        "architectures": [architecture],
        "model_type": family.name,
        **{theirs: getattr(config, mine) for theirs, mine in _COMMON + fields},
    }


def pad_from_hf(d: dict) -> int:
    """The checkpoint's padding id, or 0 when it lies outside the vocabulary (tiny configs keep the released id)."""
    pad = d.get("pad_token_id")
    return pad if pad is not None and pad < d["vocab_size"] else 0


def plain_rope(params: dict) -> dict:
    """``params`` (one rope_parameters entry), refused if it scales the rotation: minibert has plain RoPE only."""
    if params.get("rope_type", "default") != "default":
        raise ValueError(f"rope scaling {params['rope_type']!r} is not supported; only plain RoPE")
    return params
