"""Five answers to "which input tokens mattered?" for one prediction, side by side, and how far they agree.

- attention: the last layer's attention from the output position(s), averaged over heads;
- rollout and flow (``flow.py``): the same question asked of every layer together;
- input x gradient and integrated gradients (``attribution.py``): how much each token's embedding changes the
  output. Their sign says which way; the comparison ranks their absolute values, since attention has no sign.

Tokens that are not words ([CLS], [SEP], [MASK]) are left out of the comparison: attention piles up on them
(chapter 05 measured how little they carry), and integrated gradients keeps them in its baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import matplotlib.pyplot as plt
import torch
from torch import nn

from .attribution import (
    Attribution,
    _eval,
    _prepare,
    check_masked_lm,
    embedding_similarity,
    input_x_gradient,
    integrated_gradients,
    masked_word,
    mean_pooled,
)
from .flow import attention_flow, attention_rollout, rank_correlation
from .views import encode_for_view, model_attentions

METHODS = ("attention", "rollout", "flow", "input x gradient", "integrated gradients")
SHORT = {"input x gradient": "input×grad", "integrated gradients": "integ.grad"}  # table headers
SPECIAL = ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "<s>", "</s>", "<pad>", "<mask>")


@dataclass
class Explanation:
    """Every method's token scores for one prediction."""

    tokens: list[str]
    scores: dict[str, torch.Tensor]  # method -> (T,) non-negative importance
    compared: torch.Tensor  # (T,) bool: the word tokens the comparison ranks
    target: str  # what is explained, in words
    value: float  # the scalar explained, f(x)
    attributions: dict[str, Attribution] = field(default_factory=dict)  # the signed gradient attributions

    def correlations(self) -> dict[tuple[str, str], float]:
        """Spearman's rank correlation of each pair of methods over the compared tokens."""
        idx = self.compared
        pairs = combinations(self.scores, 2)
        return {(a, b): rank_correlation(self.scores[a][idx], self.scores[b][idx]) for a, b in pairs}

    def top(self, method: str, k: int = 3) -> list[str]:
        """The k compared tokens a method scores highest."""
        words = [t for t, keep in zip(self.tokens, self.compared.tolist()) if keep]
        vals = self.scores[method][self.compared]
        return [words[i] for i in vals.argsort(descending=True)[:k].tolist()]

    def table(self) -> str:
        """The compared tokens' scores, each method scaled so that its largest is 1."""
        head = f"{'token':>14} " + " ".join(f"{SHORT.get(m, m):>11}" for m in self.scores)
        rows = [head]
        scaled = {m: s / s[self.compared].max().clamp_min(1e-12) for m, s in self.scores.items()}
        for t, (tok, keep) in enumerate(zip(self.tokens, self.compared.tolist())):
            if keep:
                rows.append(f"{tok:>14} " + " ".join(f"{float(scaled[m][t]):>11.2f}" for m in self.scores))
        return "\n".join(rows)


def _compared(tokens: list[str]) -> torch.Tensor:
    return torch.tensor([t not in SPECIAL for t in tokens])


def _attention_scores(attentions, outputs: list[int]) -> dict[str, torch.Tensor]:
    """Raw last-layer attention, rollout and flow from the output positions, averaged over them."""
    last = attentions[-1][0].float().mean(0)  # (T, T): the last layer, averaged over heads
    return {
        "attention": last[outputs].mean(0),
        "rollout": attention_rollout(attentions)[outputs].mean(0),
        "flow": attention_flow(attentions, outputs).mean(0),
    }


def explain_masked_word(
    model: nn.Module, tokenizer, text: str, target: str | None = None, steps: int = 32, max_tokens: int = 64
) -> Explanation:
    """Explain a masked-language model's prediction at the one ``[MASK]`` of ``text``: its top word, or
    ``target`` (a vocabulary token), by its log-probability."""
    check_masked_lm(model)
    batch = encode_for_view(tokenizer, text, None, max_tokens)
    ids = batch["input_ids"][0]
    where = (ids == tokenizer.mask_token_id).nonzero().flatten().tolist()
    if len(where) != 1:
        raise ValueError(f"put exactly one [MASK] in the text (found {len(where)}): {text!r}")
    position = where[0]
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    if target is None:
        target_id = _top_prediction(model, batch, position)
    else:
        target_id = tokenizer.convert_tokens_to_ids(target)
        if target_id == getattr(tokenizer, "unk_token_id", None) and target != "[UNK]":
            raise ValueError(f"{target!r} is not in the vocabulary; give one of its tokens, e.g. {tokens[1]!r}")
    score = masked_word(position, target_id)
    keep = ~_compared(tokens)
    ixg = input_x_gradient(model, batch, score, tokens)
    ig = integrated_gradients(model, batch, score, steps=steps, keep=keep, tokens=tokens)
    scores = _attention_scores(model_attentions(model, batch), [position])
    scores |= {"input x gradient": ixg.scores.abs(), "integrated gradients": ig.scores.abs()}
    word = tokenizer.convert_ids_to_tokens(target_id)
    return Explanation(tokens, scores, ~keep, f"log P({word!r} at [MASK])", ig.value, {a.method: a for a in (ixg, ig)})


def _top_prediction(model: nn.Module, batch: dict, position: int) -> int:
    """The id of the most likely token at ``position``."""
    inputs, _ = _prepare(model, batch)
    with _eval(model), torch.no_grad():
        if hasattr(model, "mlm_head"):
            where = torch.zeros_like(inputs["input_ids"], dtype=torch.bool)
            where[:, position] = True
            logits = model(**inputs, masked_positions=where).mlm_logits[0]  # (V,)
        else:
            logits = model(**inputs).logits[0, position]
    return int(logits.argmax())


def explain_similarity(
    model: nn.Module, tokenizer, text: str, reference: str, steps: int = 32, max_tokens: int = 64
) -> Explanation:
    """Explain a sentence encoder's embedding of ``text`` (mean pooling, as MiniLM's) by its cosine similarity to
    the embedding of ``reference``: which words make the two sentences alike."""
    batch = encode_for_view(tokenizer, text, None, max_tokens)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    ref = mean_pooled(model, encode_for_view(tokenizer, reference, None, max_tokens))
    score = embedding_similarity(ref)
    keep = ~_compared(tokens)
    ixg = input_x_gradient(model, batch, score, tokens)
    ig = integrated_gradients(model, batch, score, steps=steps, keep=keep, tokens=tokens)
    scores = _attention_scores(model_attentions(model, batch), list(range(len(tokens))))  # mean pooling: every output
    scores |= {"input x gradient": ixg.scores.abs(), "integrated gradients": ig.scores.abs()}
    return Explanation(tokens, scores, ~keep, f"cos(embedding, embedding of {reference!r})", ig.value,
                       {a.method: a for a in (ixg, ig)})  # fmt: skip


def mean_correlations(explanations: list[Explanation]) -> dict[tuple[str, str], float]:
    """Each pair of methods' rank correlation averaged over several explanations (nan ones skipped)."""
    sums: dict[tuple[str, str], list[float]] = {}
    for e in explanations:
        for pair, r in e.correlations().items():
            if r == r:  # not nan
                sums.setdefault(pair, []).append(r)
    return {pair: sum(v) / len(v) for pair, v in sums.items()}


def plot_explanation(explanation: Explanation, ax=None, title: str | None = None):
    """Bars per compared token, one colour per method, each method scaled so that its largest score is 1."""
    e = explanation
    words = [t for t, keep in zip(e.tokens, e.compared.tolist()) if keep]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.55 * len(words) + 2), 3))
    n = len(e.scores)
    width = 0.8 / n
    for k, (method, s) in enumerate(e.scores.items()):
        vals = s[e.compared]
        vals = vals / vals.max().clamp_min(1e-12)
        ax.bar([i + (k - (n - 1) / 2) * width for i in range(len(words))], vals.tolist(), width, label=method)
    ax.set_xticks(range(len(words)), words, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("score / largest")
    ax.set_title(title or f"Which tokens matter for {e.target}", fontsize=9)
    ax.legend(fontsize=7, ncols=min(n, 5))
    return ax
