"""Long inputs: minibert's ModernBERT against transformers' ModernBertModel (sdpa), same weights, batch 1.

Every (model, length) pair runs in a fresh Python process, so one measurement's memory cannot leak into the
next. Both processes import the same libraries and load the same weights; the inputs are the same seeded ids.

- time: the best of ``--repeats`` forward passes (more for short inputs: at least 3 CPU seconds of them) after
  a first, untimed one, under ``torch.no_grad()``: the least-disturbed run, as timeit reports it (on a shared
  machine the others measure the neighbours' load). It is given as wall-clock seconds and as the CPU seconds the
  process used. With one thread (the default) CPU time is what the wall clock would show on an idle machine, and
  it hardly moves when other programs compete for the cores: the speed-up is computed from it (with
  ``--threads 2``, from the wall clock: use an idle machine);
- peak memory: the process's peak resident set during the first full-length forward pass, from Linux's VmHWM
  (reset by writing 5 to /proc/self/clear_refs just before the pass) minus the resident set before it, i.e.
  what the forward pass itself added (weights and libraries excluded). Before it, one short forward pass does
  the first-call set-up and malloc_trim hands freed heap back, so both models start from what they hold. The
  whole process's peak is printed beside it. Where clear_refs is not writable, resource.getrusage's ru_maxrss
  is used instead (it cannot be reset).

The model is the ``modernbert-mini`` preset (6 layers x 256, GeGLU, local windows of 128 tokens with every third
layer global) with BERT's vocabulary padded to 30,528: 11.2M parameters.

    python benchmarks/long_context.py                      # lengths 512 2048 8192, one thread
    python benchmarks/long_context.py --threads 2 --lengths 512 2048
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "transformers": "transformers ModernBertModel (sdpa)",
    "minibert": "minibert modernbert-mini preset",
    "minibert-global": "minibert, every layer global (for comparison)",
}


def hf_config(max_len: int):
    from transformers import ModernBertConfig

    from minibert import preset
    from minibert.config import pad_vocab_size

    c = preset("modernbert-mini")
    return ModernBertConfig(
        vocab_size=pad_vocab_size(30522),
        hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads,
        max_position_embeddings=max(8192, max_len),
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
        cls_token_id=101,
        sep_token_id=102,
        attn_implementation="sdpa",
    )


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS: resident now, VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> None:
    import torch
    import transformers  # noqa: F401  (imported by both workers: the same libraries in memory)

    from minibert import hf
    from minibert.encoder import Encoder
    from minibert.files import load_weights

    torch.set_num_threads(args.threads)
    config = hf_config(args.length)
    sd = load_weights(args.weights)
    if args.model == "transformers":
        model = transformers.ModernBertModel(config)
        model.load_state_dict(sd)
    else:
        cfg = hf.config_from_hf(config.to_dict())
        if args.model == "minibert-global":
            cfg = cfg.replace(global_attn_every_n_layers=1)
        model = hf.from_pretrained(sd, model_class=Encoder, config=cfg)
    model.eval()
    ids = torch.randint(1000, 30000, (1, args.length), generator=torch.Generator().manual_seed(0))

    def run(x=ids):
        with torch.no_grad():
            out = model(input_ids=x) if args.model == "transformers" else model(x)
        return out.last_hidden_state

    run(ids[:, :64])  # first-call set-up (thread pools, kernels) is not the forward pass's memory
    gc.collect()
    _trim()  # hand freed heap back to the system, so both models start from what they really hold
    rss_before = _status("VmRSS")
    exact = _reset_peak()
    start = time.perf_counter()
    out = run()
    first = time.perf_counter() - start
    peak_total = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, cpu = [], []
    while len(times) < args.repeats or (sum(cpu) < 3.0 and len(times) < 50):  # short inputs: more runs
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    torch.save(out, args.out)
    print(
        json.dumps(
            dict(
                seconds=min(times),
                median=statistics.median(times),
                cpu_seconds=min(cpu),
                first=first,
                added_bytes=peak_total - rss_before,
                peak_bytes=peak_total,
                exact_peak=exact,
            )
        )
    )


def measure(model: str, length: int, weights: Path, out: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", model, "--length", str(length), "--weights", str(weights)]
    cmd += ["--out", str(out), "--threads", str(args.threads), "--repeats", str(args.repeats)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(f"{model} at {length} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--worker", choices=list(MODELS), dest="model")
    p.add_argument("--length", type=int)
    p.add_argument("--weights")
    p.add_argument("--out")
    args = p.parse_args()
    if args.model:
        return worker(args)

    import torch
    from transformers import ModernBertModel

    from minibert.files import save_safetensors

    torch.manual_seed(0)
    ref = ModernBertModel(hf_config(max(args.lengths)))
    n_params = sum(p.numel() for p in ref.parameters())
    print(
        f"{n_params / 1e6:.1f}M parameters, {args.threads} thread(s), best of {args.repeats} runs after an untimed one"
    )
    print(f"load average before: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
    print("peak = peak resident memory added by the forward pass (VmHWM after reset - VmRSS before)\n")
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.safetensors"
        save_safetensors(ref.state_dict(), weights)
        del ref
        header = f"{'length':>6}  {'model':<46} {'CPU s':>7} {'wall s':>7} {'peak MB':>8} {'process MB':>10}  "
        header += f"{'speed-up':>8} {'memory':>7}"
        print(header)
        print("-" * len(header))
        for length in args.lengths:
            rows, outs = {}, {}
            for model in args.models:
                outs[model] = Path(tmp) / f"{model}-{length}.pt"
                rows[model] = measure(model, length, weights, outs[model], args)
            base = rows.get("transformers")
            key = "cpu_seconds" if args.threads == 1 else "seconds"
            for model, r in rows.items():
                speed = f"{base[key] / r[key]:7.2f}x" if base else ""
                mem = f"{r['added_bytes'] / base['added_bytes']:6.2f}x" if base else ""
                print(
                    f"{length:>6}  {MODELS[model]:<46} {r['cpu_seconds']:>7.3f} {r['seconds']:>7.3f} "
                    f"{r['added_bytes'] / 2**20:>8.0f} {r['peak_bytes'] / 2**20:>10.0f}  {speed:>8} {mem:>7}"
                )
            if base and "minibert" in rows:
                diff = (torch.load(outs["minibert"]) - torch.load(outs["transformers"])).abs().max().item()
                print(f"{'':>6}  same output as transformers: max abs diff {diff:.1e}")
            print()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    basis = "CPU" if args.threads == 1 else "wall-clock"
    print(f"speed-up = transformers' {basis} time / this model's; memory = this model's peak / transformers' peak")


if __name__ == "__main__":
    main()
