"""Training checkpoints: minibert's model format, the files of a checkpoint read and checked, the newest intact
checkpoint of a run, and the random state that makes a resumed run continue exactly.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from pathlib import Path

import torch

from ..config import EncoderConfig
from ..encoder.model import EncoderForPreTraining
from ..files import (
    CheckpointError,
    atomic_write,
    check_readable,
    load_weights,
    read_json,
    refused_pickle,
    save_safetensors,
    short_reason,
)
from .distributed import _all_ranks_agree, _world


def save_model(model: EncoderForPreTraining, folder: str | os.PathLike, tokenizer=None) -> Path:
    """minibert's own format: config.json (EncoderConfig fields), model.safetensors, and the tokenizer's vocab."""
    folder = Path(folder)
    sd = model.state_dict()
    if model.config.tie_word_embeddings:
        sd.pop("mlm_head.decoder.weight", None)  # the same tensor as the token embeddings: stored once
    save_safetensors(sd, folder / "model.safetensors", metadata={"format": "pt", "minibert": "pretraining"})
    text = json.dumps(model.config.to_dict(), indent=2) + "\n"
    atomic_write(folder / "config.json", lambda f: Path(f).write_text(text, encoding="utf-8"))
    if tokenizer is not None:
        tokenizer.save(folder)
    return folder


def find_intact_checkpoint(out_dir: str | os.PathLike | None, rank: int = 0):
    """(folder, its files read by :func:`read_checkpoint`, [(newer damaged folder, why)]) for the newest checkpoint
    under ``out_dir`` whose files all read; None when there is no checkpoint; a :class:`CheckpointError` that lists
    what is wrong with each when none is intact. Under ``torchrun`` every rank settles on the same one."""
    folders = checkpoint_folders(out_dir)
    if not folders:
        return None
    skipped = []
    for folder in reversed(folders):
        try:
            files, problem = read_checkpoint(folder, rank), None
        except (CheckpointError, OSError) as e:
            files, problem = None, str(e)
        if _all_ranks_agree(problem is None):
            return folder, files, skipped
        skipped.append((folder, problem or "damaged on another process"))
    lines = "\n".join(f"  {folder.name}: {why}" for folder, why in skipped)
    raise CheckpointError(
        f"no intact checkpoint in {folders[0].parent}; each one is damaged:\n{lines}\nRestore one from a copy, or "
        "start again without --resume in a new folder (move this one aside to keep it)"
    )


def checkpoint_folders(out_dir: str | os.PathLike | None) -> list[Path]:
    """The complete ``checkpoints/step-*`` folders under ``out_dir``, oldest first (a ``.tmp`` one is a save that
    never finished)."""
    if out_dir is None:
        return []
    root = Path(out_dir) / "checkpoints"
    return sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))


def latest_checkpoint(out_dir: str | os.PathLike | None) -> Path | None:
    """The newest complete ``checkpoints/step-*`` folder under ``out_dir`` (None when there is none)."""
    done = checkpoint_folders(out_dir)
    return done[-1] if done else None


_STATE_KEYS = ("step", "total_steps", "optimizer", "data", "phase_steps", "history", "evals", "train_seconds",
               "world_size")  # fmt: skip


def read_checkpoint(folder: str | os.PathLike, rank: int = 0) -> dict:
    """Every file of a training checkpoint, read and checked before anything is changed: a damaged file raises a
    :class:`CheckpointError` that names it, and the trainer is left as it was.

    Returns {"model": state dict, "state": trainer state, "rng": this rank's RNG state or None, "config": dict}.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    for name in ("model.safetensors", "trainer_state.pt", "config.json"):
        if not (folder / name).exists():
            raise CheckpointError(f"{folder} has no {name}: not a complete minibert training checkpoint")
    model = load_weights(folder / "model.safetensors")
    config = read_json(folder / "config.json", "model config")
    state = _load_tensors_pickle(folder / "trainer_state.pt")
    missing = [k for k in _STATE_KEYS if k not in state] if isinstance(state, dict) else list(_STATE_KEYS)
    if missing:
        raise CheckpointError(f"{folder / 'trainer_state.pt'} is damaged: it lacks {missing}")
    rngs = []  # every process's, not only this one's: all ranks must judge a checkpoint alike
    for k in range(state["world_size"]):
        rng_file = folder / f"rng-{k}.pt"
        if not rng_file.exists():
            raise CheckpointError(f"{folder} has no rng-{k}.pt: not a complete minibert training checkpoint")
        rngs.append(_load_tensors_pickle(rng_file))
        if not isinstance(rngs[-1], dict) or "torch" not in rngs[-1] or "python" not in rngs[-1]:
            raise CheckpointError(f"{rng_file} is damaged: it does not hold a random-number generator state")
    same_world = state["world_size"] == _world()[1]  # else each rank's stream cannot be matched up
    rng = rngs[rank] if same_world and rank < len(rngs) else None
    return {"model": model, "state": state, "rng": rng, "config": config}


def _load_tensors_pickle(path: Path):
    """A torch.save file of tensors and plain Python values (``weights_only``), or a message naming the file."""
    check_readable(path, "checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before it fails on a damaged file
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = "holds Python objects minibert refuses to load" if refused_pickle(path, e) else "is damaged"
        raise CheckpointError(
            f"could not read {path} ({short_reason(e)}); the file {why}: it is not as minibert wrote it"
        ) from e


# Fields that only change how the model trains, not its weights: a checkpoint loads into a model that differs here
_TRAINING_ONLY_FIELDS = {"hidden_dropout", "attention_dropout", "initializer_range", "unpad"}


def _check_same_model(folder: Path, saved: dict, config: EncoderConfig) -> None:
    own = config.to_dict()
    diff = [f"{k} {saved.get(k)!r} vs {own[k]!r}" for k in own
            if k not in _TRAINING_ONLY_FIELDS and saved.get(k, own[k]) != own[k]]  # fmt: skip
    diff += [f"{k} (unknown here)" for k in saved if k not in own]
    if diff:
        raise CheckpointError(
            f"{folder} holds another model than this one (checkpoint vs here: {', '.join(diff)}); resume with the "
            "settings the run started with (the same preset and vocabulary), or start a new run in another folder"
        )


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
