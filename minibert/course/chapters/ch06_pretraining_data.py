"""Exercises and questions of chapter 06, pretraining data (solutions/06_pretraining_data.ipynb)."""

from __future__ import annotations

import functools
import random

import torch

from ... import pretrain
from ...hf import minilm_path
from ...text import BertTokenizer
from ..spec import Case, Exercise, Question


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return BertTokenizer.from_pretrained(minilm_path())


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pick_cases() -> list:
    cands = torch.rand(6, 40, generator=_generator(1)) > 0.2
    cands[:, 0] = cands[:, -1] = False  # [CLS] and [SEP]
    n = pretrain.num_to_mask(cands.sum(1), 0.15, 20)
    return [Case((cands, n, seed), f"generator seeded {seed}") for seed in (0, 1, 2)]


def _rule_cases() -> list:
    ids = torch.randint(1000, 30000, (8, 64), generator=_generator(2))
    selected = torch.rand(8, 64, generator=_generator(3)) < 0.15
    return [Case((ids, selected, _tokenizer().mask_token_id, torch.arange(999, 30522), seed),
                  f"generator seeded {seed}") for seed in (0, 1)]  # fmt: skip


def _pair_cases() -> list:
    tok = _tokenizer()
    return [
        (tok.encode(a, add_special_tokens=False), tok.encode(b, add_special_tokens=False), tok.cls_token_id,
         tok.sep_token_id)
        for a, b in [("the cat sat on the mat.", "it was asleep."), ("aristotle taught alexander.", "tolkien wrote.")]
    ]  # fmt: skip


def _pair_reference(a, b, cls_id, sep_id):
    inst = pretrain.pair_instance(a, b, cls_id, sep_id, pretrain.NSP_IS_NEXT)
    return list(inst.input_ids), list(inst.token_type_ids)


def _truncate_reference(a, b, max_num_tokens, rng):
    pretrain.truncate_seq_pair(a, b, max_num_tokens, rng)
    return a, b


def _unchanged_share() -> float:
    masker = pretrain.Masker(mask_token_id=0, special_ids=(), vocab_size=2)  # BERT's defaults: 15%, 80/10/10
    return masker.mask_prob * (1 - masker.mask_frac - masker.random_frac)


ITEMS = [
    Exercise(
        id="06.1",
        function="pick_positions",
        cases=_pick_cases,
        reference=pretrain.select_tokens,
        call=lambda fn, c, n, seed: fn(c, n, _generator(seed)),
        args=("candidates", "n", "seed"),
        dims=("row", "position"),
        hints=(
            "Give every position a random score, push the positions that may not be picked to the end, and keep "
            "the n[b] best-ranked positions of each row.",
            "One call: torch.rand(candidates.shape, generator=generator). Non-candidates score 2.0 (masked_fill). "
            "The rank of each position in its row is the argsort of the argsort along dim=1.",
            "scores = torch.rand(candidates.shape, generator=generator).masked_fill(~candidates, 2.0); rank = "
            "scores.argsort(dim=1).argsort(dim=1); return (rank < n[:, None]) & candidates",
        ),
    ),
    Exercise(
        id="06.2",
        function="mask_80_10_10",
        cases=_rule_cases,
        reference=pretrain.apply_mask_rule,
        call=lambda fn, i, s, m, r, seed: fn(i, s, m, r, _generator(seed)),
        args=("input_ids", "selected", "mask_token_id", "random_ids", "seed"),
        returns=("masked_ids", "labels"),
        dims=("row", "position"),
        hints=(
            "One uniform number per position decides the fate of a selected token: below 0.8 [MASK], from 0.8 to "
            "0.9 a random token, above it unchanged. Labels keep the original tokens where something was selected.",
            "Draw u = torch.rand(input_ids.shape, generator=generator) first, then the random tokens, "
            "random_ids[torch.randint(len(random_ids), input_ids.shape, generator=generator)]: the order of the "
            "draws decides the numbers.",
            "masked = input_ids.masked_fill(selected & (u < 0.8), mask_token_id); masked = torch.where(selected & "
            "(u >= 0.8) & (u < 0.9), random_tokens, masked); labels = input_ids.masked_fill(~selected, -100)",
        ),
    ),
    Exercise(
        id="06.3",
        function="nsp_pair",
        cases=_pair_cases,
        reference=_pair_reference,
        args=("tokens_a", "tokens_b", "cls_id", "sep_id"),
        returns=("input_ids", "token_type_ids"),
        hints=(
            "Three special tokens frame the two segments; the segment ids say which segment each position belongs "
            "to, and the first [SEP] still belongs to A.",
            "input_ids = [cls_id, *tokens_a, sep_id, *tokens_b, sep_id]. Segment 0 covers len(tokens_a) + 2 "
            "positions, segment 1 the other len(tokens_b) + 1.",
            "return [cls_id, *tokens_a, sep_id, *tokens_b, sep_id], [0] * (len(tokens_a) + 2) + [1] * "
            "(len(tokens_b) + 1)",
        ),
    ),
    Exercise(
        id="06.4",
        function="truncate",
        cases=lambda: [
            (list(range(30)), list(range(100, 110)), 20, 0),
            (list(range(5)), list(range(100, 140)), 12, 1),
            Case((list(range(8)), list(range(100, 108)), 9, 2), "a tie: B is trimmed"),
            Case((list(range(3)), list(range(100, 102)), 10, 3), "short enough already"),
        ],
        reference=_truncate_reference,
        call=lambda fn, a, b, m, seed: fn(list(a), list(b), m, random.Random(seed)),
        args=("a", "b", "max_num_tokens", "seed"),
        returns=("a", "b"),
        hints=(
            "Remove one token at a time while the pair is too long, always from the longer list, from its front or "
            "its back at random.",
            "longer = a if len(a) > len(b) else b (B on a tie); one rng.random() per removed token: below 0.5 "
            "delete the first token, else the last.",
            "while len(a) + len(b) > max_num_tokens: longer = a if len(a) > len(b) else b; del longer[0] if "
            "rng.random() < 0.5 else longer.pop(); return a, b",
        ),
    ),
    Question(
        id="06.Q1",
        function="unchanged_share",
        answer=_unchanged_share,
        rel_tol=0.02,
        hints=("15% of the tokens are chosen; of those, the part that is neither [MASK] nor random stays as it is.",),
        explanation="10% of the 15% chosen tokens stay unchanged: 1.5% of all tokens are predicted while the model "
        "sees the right token. That keeps the model from assuming that a visible token is never the answer.",
    ),
    Question(
        id="06.Q2",
        function="room_for_text",
        answer=lambda: 128 - len(pretrain.pair_instance([], [], 1, 2, pretrain.NSP_IS_NEXT).input_ids),
        rel_tol=0.0,
        abs_tol=0.5,
        hints=("A pair of 128 tokens also holds the special tokens of the layout: count them.",),
        explanation="[CLS], and a [SEP] after each segment: 3 special tokens, so A and B share 125 tokens "
        "(max_num_tokens in truncate).",
    ),
]
