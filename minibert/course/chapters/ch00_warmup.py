"""Exercises of the warm-up (solutions/00_warmup.ipynb): softmax, GELU, and one question."""

from __future__ import annotations

import torch

from ...encoder import ACTIVATIONS
from ..spec import Case, Exercise, Question, seeded_tensors


def _softmax_cases() -> list:
    small = [Case((x,)) for x in seeded_tensors((4, 7), (2, 3, 5), seed=1)]
    huge = Case((torch.tensor([[1000.0, 1001.0, 999.0]]),), "scores near 1000: exp overflows without the max trick")
    return small + [huge]


ITEMS = [
    Exercise(
        id="00.1",
        function="softmax",
        cases=_softmax_cases,
        reference=lambda x: torch.softmax(x, dim=-1),
        args=("x",),
        hints=(
            "Exponentiate every score, then divide each row by its own sum, so that each row sums to 1. Work on the "
            "last dimension, whatever the number of dimensions.",
            "softmax(x) = softmax(x - c) for any c that is the same along a row: subtract the row's maximum first, "
            "and the largest exponent is exp(0) = 1. Keep the reduced dimension (keepdim=True) so it broadcasts.",
            "x.max(dim=-1, keepdim=True).values is the row maximum; e = torch.exp(x - that); then e divided by "
            "e.sum(dim=-1, keepdim=True).",
        ),
    ),
    Exercise(
        id="00.2",
        function="gelu",
        cases=lambda: [(x * 3,) for x in seeded_tensors((5, 9), (64,), seed=2)],
        reference=ACTIVATIONS["gelu"],
        args=("x",),
        hints=(
            "GELU(x) = x times the probability that a standard normal variable is below x: Phi(x), the normal CDF.",
            "The normal CDF is written with the error function: Phi(x) = (1 + erf(x / sqrt(2))) / 2. torch.erf "
            "computes erf (not the tanh approximation).",
            "0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))",
        ),
    ),
    Question(
        id="00.Q1",
        function="equal_scores",
        answer=lambda: torch.softmax(torch.zeros(4), dim=0)[0].item(),
        hints=("The softmax of equal scores treats every position alike, and the probabilities sum to 1.",),
        explanation="Equal scores give equal probabilities, 1/4 each: adding the same number to every score "
        "changes nothing, which is also why subtracting the maximum is safe.",
    ),
]
