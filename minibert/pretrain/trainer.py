"""The pretraining loop: AdamW with warmup and decay (or any optimizer and schedule), gradient accumulation,
evaluation, checkpoints with exact resume, data-parallel training under ``torchrun``.

The trainer takes any :class:`~minibert.encoder.EncoderForPreTraining` (its config decides whether there is a
next-sentence head), an optimizer factory and a learning-rate schedule, so other recipes (StableAdamW, a
warmup-stable-decay schedule, several phases with different masking) plug in without changing this file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..encoder.model import EncoderForPreTraining
from ..files import (
    CheckpointError,
    atomic_write,
)
from ..hf import load_into
from ..runtime import get_device, progress_bar
from .checkpoints import (
    _check_same_model,
    _rng_state,
    _set_rng_state,
    find_intact_checkpoint,
    read_checkpoint,
    save_model,
)
from .data import PretrainingStream
from .distributed import _barrier, _world
from .masking import IGNORE_INDEX
from .objective import _autocast, _eval_metrics, _evaluate_sums, pretraining_sums
from .optim import adamw, linear_warmup_decay

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


def split_steps(total: int, shares: list[float]) -> list[int]:
    """``total`` steps shared out over phases by their shares of the run (the last phase takes the rounding)."""
    counts = [round(total * share) for share in shares[:-1]]
    return counts + [max(0, total - sum(counts))]


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
            step_sums = torch.stack([mlm.detach(), s["mlm_correct"], nsp.detach(), s["nsp_correct"]])
            sums += step_sums.cpu().double()  # widened on the CPU: MPS has no float64
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
        cfg = self.config
        target = self.total_steps if steps is None else min(self.total_steps, self.step + steps)
        bar = progress_bar(total=self.total_steps, initial=self.step, desc="pretraining", unit="step", mininterval=2,
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

    def measure_step_seconds(self, steps: int = 2, phase: int | None = None) -> float:
        """Seconds per optimizer step (of ``phase``: default the current one), timed on real steps that are then
        undone (weights, optimizer, data, RNG)."""
        snapshot = copy.deepcopy(self._state(include_weights=True))
        rng = _rng_state()
        history, evals, seconds = list(self.history), list(self.evals), self.train_seconds
        try:
            if phase is not None:
                self.step, self._phase_index = sum(p.steps for p in self.phases[:phase]), -1
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

    def plan_minutes(self, minutes: float, steps_to_time: int = 2, shares: list[float] | None = None) -> int:
        """Set the run's length so that it takes about ``minutes`` of training; returns the number of steps.

        The schedule then warms up and decays over that many steps; ``max_minutes`` stays as a hard stop. With
        several phases, ``shares`` says which share of the steps each phase gets (its step time is measured on its
        own batches).
        """
        if shares is None:
            if len(self.phases) != 1:
                raise ValueError("plan_minutes sizes several phases from their shares of the steps: pass shares")
            shares = [1.0]
        if len(shares) != len(self.phases) or abs(sum(shares) - 1) > 1e-6 or min(shares) < 0:
            raise ValueError(f"shares {shares} must give each of the {len(self.phases)} phases a share, adding up to 1")
        per_step = [self.measure_step_seconds(steps_to_time, phase=i) if share > 0 else 0.0
                    for i, share in enumerate(shares)]  # fmt: skip
        total = max(1, int(60 * minutes / sum(share * t for share, t in zip(shares, per_step))))
        counts = split_steps(total, shares)
        for p, n in zip(self.phases, counts):
            p.steps = n
        self.total_steps = self.config.steps = sum(counts)
        self._phase_index = -1
        self._set_lr()
        return self.total_steps

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
