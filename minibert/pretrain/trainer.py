"""Pretraining: the loss at masked positions, AdamW with warmup and decay, evaluation, checkpoints and exact resume,
data-parallel training under ``torchrun``.

The trainer takes any :class:`~minibert.encoder.EncoderForPreTraining` (its config decides whether there is a
next-sentence head), an optimizer factory and a learning-rate schedule, so other recipes (StableAdamW, a
warmup-stable-decay schedule, several phases with different masking) plug in without changing this file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

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
from ..hf import config_from_hf, from_pretrained, load_into, save_pretrained
from ..runtime import get_device
from ..text.wordpiece import BertTokenizer
from .data import PretrainingStream
from .masking import IGNORE_INDEX
from .optim import adamw, linear_warmup_decay

# ---------------------------------------------------------------------------------------------------------------
# The loss


def pretraining_sums(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Forward one batch and return (MLM loss summed over masked tokens, NSP loss summed over sequences, counts).

    The vocabulary is scored only at the masked positions: ``masked_positions`` hands the MLM head an (N, C)
    matrix instead of (B, T, C), which skips most of the step's work (the decoder onto the vocabulary is the
    largest matrix multiply in a small BERT). Sums, not means, so the caller can normalise by the whole global
    batch: micro-batches and data-parallel ranks then add up to exactly the single-batch gradient.
    """
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX  # (B, T)
    out = model(
        batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
        masked_positions=masked,
    )
    targets = labels[masked]  # (N,)
    logits = out.mlm_logits.float()  # (N, V)
    mlm = F.cross_entropy(logits, targets, reduction="sum")
    stats = {"mlm_correct": (logits.argmax(-1) == targets).sum(), "masked": masked.sum()}
    if out.nsp_logits is not None:
        nsp_logits = out.nsp_logits.float()  # (B, 2)
        nsp = F.cross_entropy(nsp_logits, batch["next_sentence_label"], reduction="sum")
        stats["nsp_correct"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum()
    else:
        nsp = logits.new_zeros(())
        stats["nsp_correct"] = torch.zeros((), dtype=torch.long, device=logits.device)
    return mlm, nsp, stats


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> dict[str, float]:
    """Held-out MLM loss and accuracy (at masked positions) and NSP loss and accuracy."""
    sums = _evaluate_sums(model, batches, device, precision)
    return _eval_metrics(sums, has_nsp=getattr(model.config, "nsp", True))


def _evaluate_sums(model, batches, device, precision) -> torch.Tensor:
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(6, dtype=torch.float64)  # mlm loss, mlm correct, masked, nsp loss, nsp correct, sequences
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            with _autocast(device, precision):
                mlm, nsp, s = pretraining_sums(model, batch)
            sums += torch.tensor(
                [mlm.item(), s["mlm_correct"].item(), s["masked"].item(), nsp.item(), s["nsp_correct"].item(),
                 batch["input_ids"].size(0)], dtype=torch.float64,
            )  # fmt: skip
    finally:
        model.train(was_training)
    return sums


def _eval_metrics(sums: torch.Tensor, has_nsp: bool) -> dict[str, float]:
    mlm_loss, mlm_correct, masked, nsp_loss, nsp_correct, seqs = sums.tolist()
    out = {"mlm_loss": mlm_loss / max(masked, 1), "mlm_acc": mlm_correct / max(masked, 1)}
    if has_nsp:
        out |= {"nsp_loss": nsp_loss / max(seqs, 1), "nsp_acc": nsp_correct / max(seqs, 1)}
    return out


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def token_counts(documents, vocab_size: int) -> torch.Tensor:
    """(V,) how often each token id occurs in tokenized documents (lists of sentences of ids)."""
    ids = torch.tensor([t for doc in documents for sentence in doc for t in sentence], dtype=torch.long)
    return torch.bincount(ids, minlength=vocab_size)


@torch.no_grad()
def init_mlm_bias(model: EncoderForPreTraining, counts: torch.Tensor, smoothing: float = 0.5) -> None:
    """Start the MLM decoder's bias at the log frequency of each token (add-``smoothing`` counts).

    A fresh model predicts every token with probability 1/V (loss ln V, 10.3 for BERT's vocabulary); with this bias
    it starts at the unigram distribution, where it would otherwise spend its first few hundred steps getting to
    (Adam moves each bias by about one learning rate per step). Special tokens never appear as targets.
    """
    bias = model.mlm_head.decoder.bias
    if bias is None:
        raise ValueError("this model's MLM decoder has no bias (decoder_bias=False)")
    if counts.numel() != bias.numel():
        raise ValueError(f"counts cover {counts.numel()} tokens, the decoder {bias.numel()}")
    probs = (counts.double() + smoothing) / (counts.sum() + smoothing * counts.numel())
    bias.copy_((probs.log() - probs.log().mean()).to(bias.dtype))


# ---------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps (ignored when phases are given: their steps add up)
    micro_batch_size: int | None = None  # sequences per forward pass on one rank; None = the rank's whole share
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    warmup: float = 0.06  # fraction of the steps (below 1) or a number of steps, for the default schedule
    max_grad_norm: float | None = 1.0  # clip the global gradient norm (None: no clipping)
    precision: str = "auto"  # "auto" = bf16 autocast on CUDA, fp32 elsewhere; or "fp32", "bf16"
    eval_every: int = 0  # steps between held-out evaluations; 0 = only at the end
    checkpoint_every: int = 0  # steps between checkpoints (needs out_dir); 0 = only at the end
    keep_checkpoints: int = 2  # older checkpoints are deleted
    out_dir: str | None = None
    max_minutes: float | None = None  # stop at the first step boundary after this much training time
    seed: int = 0
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Phase:
    """A stretch of training with its own data (e.g. EuroBERT's annealing phase: another mix, less masking)."""

    steps: int
    data: PretrainingStream
    mask_prob: float | None = None  # when set, the stream's masker switches to this ratio for the phase


# ---------------------------------------------------------------------------------------------------------------
# Distributed helpers


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU, nccl on GPU).

    Returns (rank, world_size, device); a plain ``python`` run is rank 0 of 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = get_device()
    return rank, world, device


def _world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Pretrain an :class:`EncoderForPreTraining` on a :class:`~minibert.pretrain.PretrainingStream` (or phases).

    Each optimizer step takes one global batch from the stream; under ``torchrun`` every rank builds the same
    global batch and trains on its slice, split into micro-batches of ``micro_batch_size`` (gradient accumulation).
    Losses are normalised by the global batch's masked-token and sequence counts, so any split gives the same
    gradient as one big batch.
    """

    def __init__(
        self,
        model: EncoderForPreTraining,
        data: PretrainingStream | list[Phase],
        config: TrainConfig | None = None,
        eval_data: list[dict[str, torch.Tensor]] | None = None,
        optimizer_factory: Callable[[nn.Module, TrainConfig], torch.optim.Optimizer] = adamw,
        schedule: Callable[[int, int], float] | None = None,
        device: torch.device | str | None = None,
        tokenizer=None,
    ) -> None:
        self.config = config = config or TrainConfig()
        self.rank, self.world = _world()
        if device is None:
            device = get_device()
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.phases = data if isinstance(data, list) else [Phase(config.steps, data)]
        if not self.phases or any(p.steps < 0 for p in self.phases):
            raise ValueError("training needs at least one phase with a non-negative number of steps")
        self.total_steps = sum(p.steps for p in self.phases)
        for p in self.phases:
            self._check_batch_size(p.data.batch_size)
        self.model = model.to(self.device)
        self.model.train()
        self.eval_data = eval_data
        self.tokenizer = tokenizer
        self.precision = config.precision
        if self.precision == "auto":
            self.precision = "bf16" if self.device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={config.precision!r}: use 'auto', 'fp32' or 'bf16'")
        self.optimizer = optimizer_factory(self.model, config)
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.schedule = schedule or linear_warmup_decay(config.warmup)
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            unused = model.config.pooler and not model.config.nsp  # a pooler nothing trains
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=unused)
        self.step = 0
        self.history: list[dict] = []  # one row per optimizer step
        self.evals: list[dict] = []  # one row per evaluation
        self.train_seconds = 0.0  # time spent in training steps (not evaluating or saving), over resumes too
        self._phase_index = -1
        torch.manual_seed(config.seed + self.rank)  # dropout: its own stream on each rank
        self._set_lr()

    def _check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise ValueError(f"the global batch of {batch_size} does not split over {self.world} processes")
        per_rank, mb = batch_size // self.world, self.config.micro_batch_size
        if mb is not None and (mb < 1 or per_rank % mb):
            raise ValueError(
                f"micro_batch_size={mb} does not divide the {per_rank} sequences each process gets per step"
            )

    # -- one step

    @property
    def phase(self) -> Phase:
        return self.phases[self._current_phase_index()]

    def _current_phase_index(self) -> int:
        end = 0
        for i, p in enumerate(self.phases):
            end += p.steps
            if self.step < end:
                return i
        return len(self.phases) - 1

    def _enter_phase(self) -> None:
        i = self._current_phase_index()
        if i != self._phase_index:
            phase = self.phases[i]
            masker = phase.data.collator.masker
            if phase.mask_prob is not None:
                if masker is None:
                    raise ValueError("mask_prob needs a dynamically masked stream (a collator with a Masker)")
                phase.data.collator.masker = masker.replace(mask_prob=phase.mask_prob)
            self._phase_index = i

    def _set_lr(self) -> None:
        factor = self.schedule(self.step, max(self.total_steps, 1))
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def _micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        per_rank = batch["input_ids"].size(0) // self.world
        mb = self.config.micro_batch_size or per_rank
        lo = self.rank * per_rank
        out = []
        for start in range(lo, lo + per_rank, mb):
            part = {k: v[start : start + mb] for k, v in batch.items()}
            T = int(part["attention_mask"].sum(1).max())  # drop columns that are padding in every row
            part = {k: (v[:, :T] if v.dim() == 2 else v) for k, v in part.items()}
            out.append({k: v.to(self.device, non_blocking=True) for k, v in part.items()})
        return out

    def train_step(self) -> dict:
        """One optimizer step on the next global batch; returns its row of history."""
        self._enter_phase()
        t0 = time.perf_counter()
        batch = next(self.phase.data)
        n_masked = max(int((batch["labels"] != IGNORE_INDEX).sum()), 1)
        n_seq = batch["input_ids"].size(0)
        net = self.ddp or self.model
        micro = self._micro_batches(batch)
        sums = torch.zeros(4, dtype=torch.float64)  # mlm loss, mlm correct, nsp loss, nsp correct (this rank)
        for k, mb in enumerate(micro):
            sync = self.ddp is None or k == len(micro) - 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                with _autocast(self.device, self.precision):
                    mlm, nsp, s = pretraining_sums(net, mb)
                loss = mlm / n_masked + nsp / n_seq
                (loss * self.world).backward()  # DDP averages over ranks; the global normalisers want a sum
            sums += torch.stack([mlm.detach(), s["mlm_correct"], nsp.detach(), s["nsp_correct"]]).double().cpu()
        grad_norm = float("nan")
        if self.config.max_grad_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self._set_lr()
        if self.world > 1:
            dist.all_reduce(sums)
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        mlm_loss, mlm_correct, nsp_loss, nsp_correct = sums.tolist()
        row = {
            "step": self.step,
            "loss": mlm_loss / n_masked + nsp_loss / n_seq,
            "mlm_loss": mlm_loss / n_masked,
            "mlm_acc": mlm_correct / n_masked,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": int(batch["attention_mask"].sum()),
            "seconds": seconds,
        }
        if self.model.config.nsp:
            row |= {"nsp_loss": nsp_loss / n_seq, "nsp_acc": nsp_correct / n_seq}
        self.history.append(row)
        return row

    # -- the loop

    def fit(self, steps: int | None = None) -> list[dict]:
        """Train until the last phase ends (or ``steps`` more steps, or ``max_minutes``); returns the history."""
        from tqdm import tqdm

        cfg = self.config
        target = self.total_steps if steps is None else min(self.total_steps, self.step + steps)
        bar = tqdm(total=self.total_steps, initial=self.step, desc="pretraining", unit="step", mininterval=2,
                   disable=not (cfg.progress and self.rank == 0), dynamic_ncols=True)  # fmt: skip
        tokens, seconds = 0, 0.0
        try:
            while self.step < target:
                row = self.train_step()
                tokens, seconds = tokens + row["tokens"], seconds + row["seconds"]
                postfix = {"loss": f"{row['loss']:.3f}", "mlm_acc": f"{row['mlm_acc']:.3f}"}
                bar.set_postfix(postfix | {"tok/s": f"{tokens / max(seconds, 1e-9):,.0f}"}, refresh=False)
                bar.update(1)
                out_of_time = self._out_of_time()
                last = self.step == target or out_of_time
                if self.eval_data is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0) or last):
                    self.run_eval()
                if cfg.out_dir and ((cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or last):
                    self.save_checkpoint()
                if out_of_time:
                    break
        finally:
            bar.close()
        return self.history

    def _out_of_time(self) -> bool:
        if self.config.max_minutes is None:
            return False
        flag = torch.tensor([float(self.train_seconds >= 60 * self.config.max_minutes)])
        if self.world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops at the same step
        return bool(flag.item())

    def run_eval(self) -> dict:
        """Evaluate on the held-out batches (shared out over the ranks) and append a row to ``evals``."""
        if self.eval_data is None:
            raise ValueError("no eval_data was given to the Trainer")
        mine = self.eval_data[self.rank :: self.world]
        sums = _evaluate_sums(self.model, mine, self.device, self.precision)
        if self.world > 1:
            dist.all_reduce(sums)
        row = {"step": self.step, "train_seconds": self.train_seconds} | _eval_metrics(sums, self.model.config.nsp)
        self.evals.append(row)
        return row

    def measure_step_seconds(self, steps: int = 2) -> float:
        """Seconds per optimizer step, timed on real steps that are then undone (weights, optimizer, data, RNG)."""
        snapshot = copy.deepcopy(self._state(include_weights=True))
        rng = _rng_state()
        history, evals, seconds = list(self.history), list(self.evals), self.train_seconds
        try:
            self.train_step()  # warm-up: allocations, first-call overheads
            t = time.perf_counter()
            for _ in range(steps):
                self.train_step()
            elapsed = torch.tensor([(time.perf_counter() - t) / steps])
        finally:
            self._load_state(snapshot)
            _set_rng_state(rng)
            self.history, self.evals, self.train_seconds = history, evals, seconds
        if self.world > 1:
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        return float(elapsed.item())

    def plan_minutes(self, minutes: float, steps_to_time: int = 2) -> int:
        """Set the run's length so that it takes about ``minutes`` of training; returns the number of steps.

        The schedule then warms up and decays over that many steps; ``max_minutes`` stays as a hard stop.
        """
        if len(self.phases) != 1:
            raise ValueError("plan_minutes sizes a single-phase run; give each phase its steps instead")
        per_step = self.measure_step_seconds(steps_to_time)
        steps = max(1, int(60 * minutes / per_step))
        self.phases[0].steps = self.total_steps = steps
        self.config.steps = steps
        self._set_lr()
        return steps

    # -- checkpoints

    def _state(self, include_weights: bool = False) -> dict:
        state = {
            "step": self.step,
            "total_steps": self.total_steps,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"step": self.step, "total_steps": self.total_steps},
            "data": [p.data.state_dict() for p in self.phases],
            "phase_steps": [p.steps for p in self.phases],
            "history": self.history,
            "evals": self.evals,
            "train_seconds": self.train_seconds,
            "world_size": self.world,
            "train_config": json.dumps(self.config.to_dict()),
        }
        if include_weights:
            state["model"] = {k: v.clone() for k, v in self.model.state_dict().items()}
        return state

    def _load_state(self, state: dict) -> None:
        if "model" in state:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if len(state["data"]) != len(self.phases):
            raise CheckpointError(
                f"the checkpoint has {len(state['data'])} phases, this trainer {len(self.phases)}: resume with "
                "the same phases"
            )
        for p, s in zip(self.phases, state["data"]):
            p.data.load_state_dict(s)
        for p, n in zip(self.phases, state["phase_steps"]):
            p.steps = n
        self.total_steps = state["total_steps"]
        self.step = state["step"]
        self.history, self.evals = list(state["history"]), list(state["evals"])
        self.train_seconds = state["train_seconds"]
        self._phase_index = -1
        self._set_lr()

    def save_checkpoint(self, folder: str | os.PathLike | None = None) -> Path:
        """Write ``out_dir/checkpoints/step-NNNNNNN/``: weights (safetensors), config, tokenizer, trainer state.

        Files go to a temporary folder that is renamed when complete, so a run killed mid-save leaves the
        previous checkpoint intact. Every rank saves its own RNG state (dropout differs per rank).
        """
        if folder is None:
            if not self.config.out_dir:
                raise ValueError("set TrainConfig.out_dir (or pass a folder) to save checkpoints")
            folder = Path(self.config.out_dir) / "checkpoints" / f"step-{self.step:07d}"
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        _barrier()
        rng = _rng_state()
        atomic_write(tmp / f"rng-{self.rank}.pt", lambda f: torch.save(rng, f))
        _barrier()
        if self.rank == 0:
            save_model(self.model, tmp, self.tokenizer)
            state = self._state()
            atomic_write(tmp / "trainer_state.pt", lambda f: torch.save(state, f))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
            self._prune(folder.parent)
        _barrier()
        return folder

    def _prune(self, root: Path) -> None:
        keep = self.config.keep_checkpoints
        done = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, folder: str | os.PathLike) -> None:
        """Restore weights, optimizer, schedule, data position, history and RNG: training continues exactly."""
        folder = Path(folder)
        self._apply_checkpoint(folder, read_checkpoint(folder, self.rank))

    def _apply_checkpoint(self, folder: Path, files: dict) -> None:
        _check_same_model(folder, files["config"], self.model.config)
        load_into(self.model, files["model"])
        state = files["state"]
        try:
            self._load_state(state)
        except ValueError as e:  # e.g. a data stream with another seed
            raise CheckpointError(f"{folder} does not fit this run: {e}; resume with the settings it started "
                                  "with") from e  # fmt: skip
        if files["rng"] is not None:
            _set_rng_state(files["rng"])
        elif self.rank == 0:
            print(f"note: the checkpoint was written by {state['world_size']} process(es); dropout's random stream "
                  f"restarts, so the run continues correctly but not bit for bit")  # fmt: skip

    def resume(self, out_dir: str | os.PathLike | None = None) -> bool:
        """Load the newest intact checkpoint under ``out_dir`` if there is one; returns whether it did.

        A damaged newest checkpoint (a file cut short by a full disk, a bad copy) is skipped, with a note that says
        why, in favour of the one before it; when none is intact the error lists what is wrong with each.
        """
        found = find_intact_checkpoint(out_dir or self.config.out_dir, self.rank)
        if found is None:
            return False
        folder, files, skipped = found
        self._apply_checkpoint(folder, files)
        if skipped and self.rank == 0:
            for bad, why in skipped:
                print(f"note: skipped the damaged checkpoint {bad}: {why}", file=sys.stderr)
            print(f"note: resumed from {folder}, the newest intact checkpoint", file=sys.stderr)
        return True


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


def _all_ranks_agree(ok: bool) -> bool:
    """Whether ``ok`` holds on every rank: all ranks must resume from the same checkpoint."""
    if not dist.is_initialized():
        return ok
    flag = torch.tensor([float(ok)])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


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


# ---------------------------------------------------------------------------------------------------------------
# Saving, loading, exporting and using a pretrained model


def save_model(model: EncoderForPreTraining, folder: str | os.PathLike, tokenizer=None) -> Path:
    """minibert's own format: config.json (EncoderConfig fields), model.safetensors, and the tokenizer's vocab."""
    folder = Path(folder)
    sd = model.state_dict()
    if model.config.tie_word_embeddings:
        sd.pop("mlm_head.decoder.weight", None)  # the same tensor as the token embeddings: stored once
    save_safetensors(sd, folder / "model.safetensors", metadata={"format": "pt", "minibert": "pretraining"})
    text = json.dumps(model.config.to_dict(), indent=2) + "\n"
    atomic_write(folder / "config.json", lambda f: Path(f).write_text(text))
    if tokenizer is not None:
        tokenizer.save(folder)
    return folder


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


def perplexity(mlm_loss: float) -> float:
    return math.exp(min(mlm_loss, 50.0))
