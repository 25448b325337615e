"""Using a pretrained model: load it (a minibert checkpoint or a Hugging Face folder), export it to transformers'
format, and fill in [MASK] tokens.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..config import EncoderConfig
from ..encoder.model import EncoderForPreTraining
from ..files import (
    CheckpointError,
    check_readable,
    load_weights,
    read_json,
)
from ..hf import config_from_hf, from_pretrained, load_into, save_pretrained
from ..text.wordpiece import BertTokenizer
from .checkpoints import checkpoint_folders, latest_checkpoint


def load_pretrained(folder: str | os.PathLike, device: torch.device | str = "cpu"):
    """(model, tokenizer) from a minibert checkpoint or an exported Hugging Face BERT folder."""
    folder = Path(folder)
    source = _model_folder(folder)
    try:
        return _load_model_folder(source, device)
    except (CheckpointError, FileNotFoundError) as e:
        older = checkpoint_folders(folder)[:-1] if source != folder else []
        if not older:
            raise
        hint = f"; an older checkpoint may be intact: pass {older[-1]}"
        raise type(e)(f"{e}{hint}") from e


def _model_folder(folder: Path) -> Path:
    """The folder that holds the model: ``folder`` itself, or the newest checkpoint of a training output folder."""
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist: give a pretrain --out folder, a checkpoint or an export")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file; give the folder that holds config.json and model.safetensors")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise CheckpointError(f"cannot read {folder}: permission denied; ask its owner to make it readable")
    if (folder / "config.json").exists():
        return folder
    latest = latest_checkpoint(folder)  # a training output folder: take its newest checkpoint
    if latest is None:
        hint = "; pass its parent (the run folder) or one step-* folder" if any(folder.glob("step-*")) else ""
        raise FileNotFoundError(f"{folder} has no config.json and no checkpoints/: not a minibert checkpoint{hint}")
    return latest


def _load_model_folder(folder: Path, device: torch.device | str):
    d = read_json(folder / "config.json", "model config")
    if "model_type" in d:  # a Hugging Face folder
        try:
            model = from_pretrained(folder, model_class=EncoderForPreTraining)
        except CheckpointError as e:
            model = _masked_lm_only(folder, d, e)
    else:
        try:
            config = EncoderConfig.from_dict(d)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{folder / 'config.json'} is not a minibert model config ({e})") from e
        model = EncoderForPreTraining(config)
        load_into(model, load_weights(folder / "model.safetensors"))
    vocab = folder / "vocab.txt"
    if not vocab.exists():
        raise FileNotFoundError(f"{folder} has no vocab.txt: save the tokenizer beside the weights")
    check_readable(vocab, "vocabulary")
    if (folder / "tokenizer_config.json").exists():
        read_json(folder / "tokenizer_config.json", "tokenizer config")
    try:
        tokenizer = BertTokenizer.from_pretrained(folder)
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{vocab} is damaged: it is not UTF-8 text (one token per line); copy it again") from e
    except ValueError as e:
        raise CheckpointError(f"{vocab}: {e}") from e
    if len(tokenizer) != model.config.vocab_size:
        raise CheckpointError(
            f"the tokenizer in {folder} has {len(tokenizer)} tokens, the model {model.config.vocab_size}; "
            "they were not saved together"
        )
    return model.to(device).eval(), tokenizer


def _masked_lm_only(folder: Path, d: dict, error: CheckpointError) -> EncoderForPreTraining:
    """A Hugging Face folder that did not load with both heads: a BertForMaskedLM (no NSP head, no pooler) loads
    without them; an encoder with no MLM head at all (a BertModel, a sentence-embedding model) cannot fill masks."""
    try:
        config = config_from_hf(d).replace(nsp=False, pooler=False)
        return from_pretrained(folder, model_class=EncoderForPreTraining, config=config)
    except CheckpointError:
        missing = str(error).split("missing keys", 1)[-1].split("\n", 1)[0]
        if "mlm_head." in missing:
            raise CheckpointError(
                f"{folder} holds an encoder without a masked-language-model head (a BertModel or a sentence-embedding "
                "model, say), so it cannot predict [MASK] tokens; use a folder saved from BertForMaskedLM or "
                "BertForPreTraining, or a minibert pretrain checkpoint"
            ) from error
        raise error from None


def export_hf(checkpoint: str | os.PathLike, out: str | os.PathLike, force: bool = False) -> Path:
    """Write a checkpoint as a transformers BertForPreTraining folder with its tokenizer (vocab.txt and
    tokenizer_config.json), so ``transformers.pipeline("fill-mask", model=out)`` runs on it.

    ``out`` must be new or empty (``force=True`` writes into a folder that holds other files), and never the
    checkpoint itself or a folder around it or inside it: the export would overwrite or shadow what it reads.
    A new folder is written under a temporary name and renamed when complete.
    """
    out, source = Path(out), _model_folder(Path(checkpoint))
    src, dst = source.resolve(), out.resolve()
    if dst == src:
        raise ValueError(f"{out} is the checkpoint being exported: exporting into it would overwrite it; choose a "
                         "new folder")  # fmt: skip
    if dst in src.parents or src in dst.parents:
        where = "holds" if dst in src.parents else "is inside"
        raise ValueError(f"{out} {where} the checkpoint being exported ({source}): exporting there would mix with it; "
                         "choose a new folder")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a new folder to export to")
    existing = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if existing and not force:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise ValueError(f"{out} is not empty ({shown}); choose a new folder, or pass --force to write into it")
    model, tokenizer = load_pretrained(source)

    def write(folder: Path) -> None:
        try:
            save_pretrained(model, folder)  # refuses (before writing) a config the format cannot express
        except ValueError as e:
            if model.config.nsp:
                raise
            raise ValueError(
                f"{source} was pretrained without next-sentence prediction (no NSP head, no pooler); minibert exports "
                "a BERT as transformers' BertForPreTraining, which has both: use it with minibert (fill-mask)"
            ) from e
        tokenizer.save(folder)

    if existing:  # force: each file is replaced atomically, the others are left as they are
        write(out)
        return out
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write(tmp)
        if out.is_dir():
            out.rmdir()  # empty: the complete folder takes its place
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@torch.no_grad()
def fill_mask(model: EncoderForPreTraining, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``top_k`` most likely tokens (with probabilities) for each ``[MASK]`` in ``text``.

    A text longer than the model's positions is cut to fit, as long as every ``[MASK]`` stays in: a [MASK] past
    the end raises, rather than giving no answer for it.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str with [MASK] in it, got {type(text).__name__}")
    if "[MASK]" not in text:
        if "[mask]" in text.lower():
            raise ValueError(f"write [MASK] in capitals (other spellings are read as plain text); got {text!r}")
        raise ValueError(f"put at least one [MASK] in the text, e.g. 'The capital of France is [MASK].'; got {text!r}")
    vocab = model.config.vocab_size
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be between 1 and the vocabulary size ({vocab}), got {top_k!r}")
    limit = model.config.max_position_embeddings
    ids = tokenizer.encode(text)  # [CLS] ... [SEP], not cut
    late = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id and i > limit - 2]
    if late:
        raise ValueError(
            f"the [MASK] at token {late[0]} (of {len(ids)}) is past the model's {limit} positions; shorten the "
            f"text so that every [MASK] is within its first {limit - 2} tokens"
        )
    device = next(model.parameters()).device
    enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=limit)
    enc = {k: v.to(device) for k, v in enc.items()}
    masked = enc["input_ids"] == tokenizer.mask_token_id  # (1, T)
    was_training = model.training
    model.eval()
    try:
        logits = model(**enc, masked_positions=masked).mlm_logits  # (M, V)
    finally:
        model.train(was_training)
    probs, ids = logits.float().softmax(-1).topk(top_k, dim=-1)
    return [
        [(tokenizer.convert_ids_to_tokens(int(i)), round(float(p), 4)) for p, i in zip(pr, row)]
        for pr, row in zip(probs, ids)
    ]
