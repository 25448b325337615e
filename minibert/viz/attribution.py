"""Does attention explain a prediction? Gradient attributions beside raw attention, rollout and flow.

Attention weights say where heads looked; an attribution says how much each input token changed the output.
Jain & Wallace (2019) found the two often disagree ("attention is not explanation"); Wiegreffe & Pinter (2019)
answered that it depends on what you ask. Here both are measured on the same prediction:

- **input x gradient**: ``x_t . df/dx_t`` for each token's input embedding x_t, the first-order share of f.
- **integrated gradients** (Sundararajan et al., 2017): the gradient averaged along the straight path from a
  baseline x' (the content tokens' embeddings set to zero; [CLS], [SEP] and [MASK] kept) to the input, times
  ``x - x'``. Its scores add up to ``f(x) - f(x')`` (completeness), which the result reports as a check.

f is a scalar the model computes: the log-probability of the predicted word at a [MASK] (:func:`masked_word`,
for a model with a masked-language-model head), or the cosine similarity of the mean-pooled sentence embedding
to a reference (:func:`embedding_similarity`, for a sentence encoder such as MiniLM, which has no MLM head).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .views import _encoder_of, model_inputs

Score = Callable[[nn.Module, dict], torch.Tensor]  # (model, inputs) -> (B,) one scalar per sequence


@dataclass
class Attribution:
    """Per-token scores of one method for one input."""

    method: str
    tokens: list[str]
    scores: torch.Tensor  # (T,): summed over the embedding's features
    value: float  # f(x)
    baseline_value: float | None = None  # f(x'), integrated gradients only

    @property
    def completeness_gap(self) -> float | None:
        """sum(scores) - (f(x) - f(x')): zero for exact integrated gradients; shrinks as steps grow."""
        if self.baseline_value is None:
            return None
        return float(self.scores.sum()) - (self.value - self.baseline_value)


def _token_embedding(model: nn.Module) -> nn.Embedding:
    """The token-embedding table of a minibert model or a transformers one."""
    encoder = _encoder_of(model)
    if encoder is not None:
        return encoder.embeddings.tok_embeddings
    if hasattr(model, "get_input_embeddings"):
        return model.get_input_embeddings()
    raise TypeError(f"cannot find the token embeddings of a {type(model).__name__}")


@contextmanager
def _embeddings_replaced(model: nn.Module, embeds: torch.Tensor):
    """Within the block, the token-embedding layer outputs ``embeds`` (B, T, C) instead of its own lookup."""
    handle = _token_embedding(model).register_forward_hook(lambda module, args, out: embeds)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def _eval(model: nn.Module):
    was_training = model.training
    model.eval()  # no dropout: the same f at every step
    try:
        with torch.enable_grad():
            yield
    finally:
        model.train(was_training)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision activations, float64 kept (the tests check gradients in float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def check_masked_lm(model: nn.Module) -> None:
    """Refuse a model that cannot predict a [MASK] (a sentence encoder such as MiniLM has no MLM head)."""
    hf_head = hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None
    if not (hasattr(model, "mlm_head") or hf_head):
        raise TypeError(
            f"a {type(model).__name__} has no masked-language-model head: it cannot predict a [MASK]; use a "
            "pretraining model, or attribute another scalar (embedding_similarity for a sentence encoder)"
        )


def masked_word(position: int, target: int) -> Score:
    """f = log P(token ``target`` at ``position``): the model's confidence in one masked-word prediction."""

    def score(model: nn.Module, inputs: dict) -> torch.Tensor:
        check_masked_lm(model)
        if hasattr(model, "mlm_head"):  # minibert: decode only the one position
            where = torch.zeros_like(inputs["input_ids"], dtype=torch.bool)
            where[:, position] = True
            logits = model(**inputs, masked_positions=where).mlm_logits  # (B, V)
        else:
            logits = model(**inputs).logits[:, position]  # a transformers masked LM
        return _at_least_float32(logits).log_softmax(-1)[:, target]

    return score


def embedding_similarity(reference: torch.Tensor) -> Score:
    """f = cosine similarity of the input's mean-pooled last hidden states to ``reference`` (C,): how much the
    sentence embedding (MiniLM's, say) still points the same way."""

    def score(model: nn.Module, inputs: dict) -> torch.Tensor:
        out = model(**inputs)
        h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out.encoder.last_hidden_state
        mask = inputs.get("attention_mask")
        mask = torch.ones(h.shape[:2], device=h.device) if mask is None else mask.to(h.dtype)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, C)
        pooled = _at_least_float32(pooled)
        return torch.cosine_similarity(pooled, reference.to(pooled.device, pooled.dtype)[None], dim=-1)

    return score


def mean_pooled(model: nn.Module, inputs: dict) -> torch.Tensor:
    """(C,) the mean-pooled last hidden state of one sequence: the reference of :func:`embedding_similarity`."""
    inputs, _ = _prepare(model, inputs)
    with _eval(model), torch.no_grad():
        out = model(**inputs)
    h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out.encoder.last_hidden_state
    return h[0].float().mean(0)


def _prepare(model: nn.Module, inputs: dict) -> tuple[dict, torch.Tensor]:
    """Inputs on the model's device (a batch of one), and their token embeddings (1, T, C), detached."""
    if inputs["input_ids"].size(0) != 1:
        raise ValueError(f"attribute one sequence at a time; got a batch of {inputs['input_ids'].size(0)}")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in model_inputs(model, inputs).items()}
    with torch.no_grad():
        x = _token_embedding(model)(inputs["input_ids"])
    return inputs, x


def input_x_gradient(model: nn.Module, inputs: dict, score: Score, tokens: list[str] | None = None) -> Attribution:
    """``sum_c x[t, c] * df/dx[t, c]`` for each token t: the gradient of f times the input embedding."""
    inputs, x = _prepare(model, inputs)
    x = x.requires_grad_()
    with _eval(model), _embeddings_replaced(model, x):
        value = score(model, inputs)
        (grad,) = torch.autograd.grad(value.sum(), x)
    scores = (x.detach() * grad)[0].sum(-1).float().cpu()
    return Attribution("input x gradient", list(tokens or []), scores, value.item())


def integrated_gradients(
    model: nn.Module,
    inputs: dict,
    score: Score,
    steps: int = 32,
    keep: torch.Tensor | None = None,
    tokens: list[str] | None = None,
    chunk: int = 16,
) -> Attribution:
    """Integrated gradients from a baseline with the embeddings of the tokens not in ``keep`` (T,) bool set to
    zero (kept tokens keep theirs, so they score zero), by the midpoint rule with ``steps`` points."""
    inputs, x = _prepare(model, inputs)
    T = x.size(1)
    keep = torch.zeros(T, dtype=torch.bool) if keep is None else keep.to(torch.bool).cpu()
    if keep.shape != (T,):
        raise ValueError(f"keep must be one bool per token ({T}), got shape {tuple(keep.shape)}")
    if steps < 1:
        raise ValueError(f"steps={steps}: integrated gradients need at least one step (32 to 256 are usual)")
    baseline = x * keep.to(x.device)[None, :, None]  # (1, T, C)
    diff = x - baseline
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps  # midpoints of [0, 1]
    total = torch.zeros_like(x)
    with _eval(model):
        for part in alphas.split(chunk):
            path = (baseline + part[:, None, None] * diff).requires_grad_()  # (S, T, C)
            batch = {k: v.expand(len(part), -1) for k, v in inputs.items()}
            with _embeddings_replaced(model, path):
                (grad,) = torch.autograd.grad(score(model, batch).sum(), path)
            total += grad.sum(0, keepdim=True)
        with torch.no_grad():
            ends = torch.cat([x, baseline])
            with _embeddings_replaced(model, ends):
                value, baseline_value = score(model, {k: v.expand(2, -1) for k, v in inputs.items()}).tolist()
    scores = (diff * total / steps)[0].sum(-1).float().cpu()
    return Attribution("integrated gradients", list(tokens or []), scores, value, baseline_value)
