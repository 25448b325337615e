"""Chapter 07's pretraining recipe in one place, and where the course keeps the model it trains.

:data:`COURSE_RECIPE` is what chapter 07 trains with, what ``minibert pretrain`` does by default and what chapter 08
runs when chapter 07's model is missing. The model chapter 07 trains is saved at :func:`course_model_path`, where
the chapters after it load it (08 fine-tunes it, 09 looks at its attention).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import PRESETS, preset
from ..encoder.model import BlockFactory, EncoderForPreTraining
from ..files import atomic_write
from ..runtime import PROFILES, cache_dir
from .checkpoints import save_model
from .data import PretrainingData, make_pretraining_data, pretraining_documents, pretraining_tokenizer
from .objective import init_mlm_bias, token_counts
from .optim import warmup_then_decay
from .trainer import Phase, TrainConfig, Trainer, split_steps


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a pretraining run's data, model and schedule (its length comes from the budget)."""

    preset: str = "bert-tiny"
    vocab_size: int = 8192  # a WordPiece vocabulary trained on the training articles
    phases: tuple[tuple[int, int, float], ...] = ((32, 128, 1.0),)  # (sequence length, batch size, share of steps)
    lr: float = 2e-3  # peak learning rate
    warmup: float = 0.06  # share of the steps
    decay: float | None = None  # None: BERT's linear decay over the run; a share: warmup-stable-decay (1 - sqrt)
    dropout: float = 0.0
    mask_prob: float = 0.15
    whole_word: bool = False
    dupe_factor: int = 1  # copies of the data, each split into pairs and cut differently
    bias_from_counts: bool = True  # the MLM decoder's bias starts at the log frequencies of the tokens
    eval_seq_len: int = 32  # the held-out pairs every evaluation scores (the same for every recipe)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset {self.preset!r} is not one of {', '.join(PRESETS)}")
        if not self.phases:
            raise ValueError("a recipe needs at least one phase (sequence length, batch size, share of the steps)")
        for length, batch, share in self.phases:
            if length < 8 or batch < 1 or not 0 < share <= 1:
                raise ValueError(f"phase {(length, batch, share)}: need length >= 8, batch >= 1, 0 < share <= 1")
        if abs(sum(share for *_, share in self.phases) - 1) > 1e-6:
            raise ValueError(f"the phases' shares add up to {sum(s for *_, s in self.phases):g}, not 1")
        if self.decay is not None and not 0 < self.decay + self.warmup <= 1:
            raise ValueError(f"warmup {self.warmup} + decay {self.decay} must be a share of the run (at most 1)")

    def schedule(self):
        """The learning-rate factor as ``f(step, total_steps)``."""
        return warmup_then_decay(self.warmup, self.decay)

    def phase_steps(self, total: int) -> list[int]:
        """``total`` steps shared out over the phases (the last one takes the rounding)."""
        return split_steps(total, [share for *_, share in self.phases])

    def describe(self) -> str:
        phases = " then ".join(f"{b} x {n} tokens ({s:.0%})" for n, b, s in self.phases)
        sched = "linear decay" if self.decay is None else f"warmup-stable-decay ({self.decay:.0%} decay, 1-sqrt)"
        extra = [f"dropout {self.dropout}"]
        extra += [f"{self.mask_prob:.0%} masked" + (" (whole words)" if self.whole_word else "")]
        extra += [f"{self.dupe_factor} cuts of the data"] if self.dupe_factor > 1 else []
        return (f"{self.preset}, {self.vocab_size:,}-piece vocabulary; batches of {phases}; peak lr {self.lr:g}, "
                f"{self.warmup:.0%} warmup, {sched}; " + ", ".join(extra))  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)


COURSE_RECIPE = Recipe(
    vocab_size=4096,
    phases=((32, 128, 0.9), (128, 32, 0.1)),  # the last tenth on longer pairs: positions up to 128 get trained
    decay=0.2,  # warmup-stable-decay
    dupe_factor=10,
    mask_prob=0.2,  # more predictions per pair (the held-out pairs keep 15%)
)  # benchmarks/pretrain_recipe.py measures each change from Recipe()


def recipe_model(
    recipe: Recipe, tokenizer, seed: int = 0, block: BlockFactory | None = None, lang: str = "en"
) -> EncoderForPreTraining:
    """A fresh model of the recipe's shape for ``tokenizer``'s vocabulary (``block``: blocks of your own)."""
    longest = max(n for n, *_ in recipe.phases)
    config = preset(recipe.preset, vocab_size=len(tokenizer), hidden_dropout=recipe.dropout,
                    attention_dropout=recipe.dropout)  # fmt: skip
    if config.position_embedding == "learned" and longest > config.max_position_embeddings:
        raise ValueError(f"{recipe.preset} has {config.max_position_embeddings} positions; a phase has {longest}")
    torch.manual_seed(seed)
    model = EncoderForPreTraining(config, block=block)
    if recipe.bias_from_counts:
        init_mlm_bias(model, token_counts(pretraining_documents(tokenizer, lang)[0], len(tokenizer)))
    return model


def recipe_data(
    recipe: Recipe,
    tokenizer,
    seed: int = 0,
    lang: str = "en",
    max_documents: int | None = None,
    max_eval_batches: int | None = None,
    eval_batch_size: int = 64,
) -> tuple[list[PretrainingData], list[dict[str, torch.Tensor]]]:
    """(one stream of training batches per phase, the held-out batches at ``recipe.eval_seq_len``)."""
    common = dict(lang=lang, max_documents=max_documents, seed=seed, eval_batch_size=eval_batch_size)
    phases = [
        make_pretraining_data(
            tokenizer,
            batch_size=batch,
            max_seq_length=length,
            mask_prob=recipe.mask_prob,
            whole_word=recipe.whole_word,
            dupe_factor=recipe.dupe_factor,
            max_eval_batches=1,
            **common,
        )
        for length, batch, _ in recipe.phases
    ]
    held = make_pretraining_data(tokenizer, batch_size=1, max_seq_length=recipe.eval_seq_len,
                                 max_eval_batches=max_eval_batches, **common)  # fmt: skip
    return phases, held.eval  # held out: 15% of the tokens masked, token by token, in every recipe


def recipe_trainer(
    recipe: Recipe = COURSE_RECIPE,
    tokenizer=None,
    minutes: float | None = None,
    steps: int | None = None,
    evals: int = 10,
    seed: int = 0,
    block: BlockFactory | None = None,
    max_documents: int | None = None,
    max_eval_batches: int | None = None,
    device: torch.device | str | None = None,
    out_dir: str | None = None,
    progress: bool = True,
) -> Trainer:
    """A :class:`Trainer` set up with ``recipe``: its model, its phases, its schedule, evaluated ``evals`` times.

    Give ``minutes`` (the step count is planned from a few timed steps of each phase, so warmup and decay span
    the whole run) or ``steps``. Call ``.fit()`` on the result.
    """
    if (minutes is None) == (steps is None):
        raise ValueError("give the run's length as minutes or as steps (one of them)")
    tokenizer = tokenizer or pretraining_tokenizer(vocab_size=recipe.vocab_size)
    model = recipe_model(recipe, tokenizer, seed=seed, block=block)
    phases, held = recipe_data(recipe, tokenizer, seed=seed, max_documents=max_documents,
                               max_eval_batches=max_eval_batches)  # fmt: skip
    total = steps if steps is not None else 1000  # a placeholder until the run is planned
    plan = [Phase(n, d.train) for n, d in zip(recipe.phase_steps(total), phases)]
    config = TrainConfig(steps=total, lr=recipe.lr, warmup=recipe.warmup, out_dir=out_dir, seed=seed,
                         max_minutes=None if minutes is None else 1.05 * minutes, progress=progress)  # fmt: skip
    trainer = Trainer(model, plan, config, eval_data=held, schedule=recipe.schedule(), device=device,
                      tokenizer=tokenizer)  # fmt: skip
    if minutes is not None:
        trainer.plan_minutes(minutes, shares=[share for *_, share in recipe.phases])
    trainer.config.eval_every = max(1, trainer.total_steps // max(evals, 1))
    return trainer


# ---------------------------------------------------------------------------------------------------------------
# The course's model: trained in chapter 07, used by the chapters after it


def course_model_path() -> Path:
    """Where chapter 07 saves the model it pretrains and chapters 08 and 09 load it: ``cache_dir()/models/chapter07``,
    a minibert checkpoint folder for :func:`~minibert.pretrain.load_pretrained`."""
    return cache_dir() / "models" / "chapter07"


def course_model_info(folder: str | os.PathLike | None = None) -> dict | None:
    """What ``training.json`` says about the course model (recipe, profile, steps, held-out scores); None when
    there is no complete model there."""
    folder = Path(folder) if folder is not None else course_model_path()
    try:
        return json.loads((folder / "training.json").read_text())
    except (OSError, ValueError):
        return None


def save_course_model(model: EncoderForPreTraining, tokenizer, info: dict, folder: str | os.PathLike | None = None):
    """Save the model, its tokenizer and ``info`` (``training.json``, written last: it marks a complete model).

    ``info["profile"]`` says which size profile trained it. A model from a larger profile is kept (returns None):
    the test suite runs chapter 07 in the smoke profile and must not replace a learner's ten-minute model.
    Otherwise the whole folder is written under a temporary name and swapped in; returns the folder.
    """
    folder = Path(folder) if folder is not None else course_model_path()
    profile = info.get("profile")
    if profile not in PROFILES:
        raise ValueError(f"info['profile'] must be one of {PROFILES}, got {profile!r}")
    old = course_model_info(folder)
    if old is not None and PROFILES.index(old.get("profile", "smoke")) > PROFILES.index(profile):
        return None
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_model(model, tmp, tokenizer)
        text = json.dumps(info, indent=2) + "\n"
        atomic_write(tmp / "training.json", lambda f: Path(f).write_text(text))
        aside = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        if folder.exists():
            os.replace(folder, aside)
        os.replace(tmp, folder)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
