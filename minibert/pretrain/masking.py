"""Masked-language-model masking: which tokens are predicted, and BERT's 80/10/10 rule for what the model sees there."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .instances import Instance

IGNORE_INDEX = -100  # label of positions the MLM loss skips (PyTorch's cross_entropy default)


def num_to_mask(num_candidates: torch.Tensor, mask_prob: float, max_predictions: int | None) -> torch.Tensor:
    """How many tokens each sequence masks: round(mask_prob * candidates), at least 1, at most ``max_predictions``."""
    n = torch.round(num_candidates.double() * mask_prob).long().clamp(min=1)
    if max_predictions is not None:
        n = n.clamp(max=max_predictions)
    return torch.minimum(n, num_candidates)


def select_tokens(candidates: torch.Tensor, n: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, T) bool: ``n[b]`` positions of row b chosen uniformly among its candidates (exactly that many)."""
    scores = torch.rand(candidates.shape, generator=generator).masked_fill(~candidates, 2.0)  # non-candidates last
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, T): rank of each position in a random order
    return (rank < n[:, None]) & candidates


def word_starts(candidates: torch.Tensor, is_continuation: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the first WordPiece of each word among the candidates (a '##' piece continues the word before,
    unless the token before it is not a candidate, e.g. it follows [SEP])."""
    prev = torch.nn.functional.pad(candidates[:, :-1], (1, 0), value=False)
    return candidates & (~is_continuation | ~prev)


def select_whole_words(
    candidates: torch.Tensor, starts: torch.Tensor, n: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Whole-word masking: words in a random order, each taken whole while it fits in ``n[b]`` tokens
    (Google's rule: a word that would overshoot is skipped and later, shorter words may still fit)."""
    scores = torch.rand(candidates.shape, generator=generator)
    selected = torch.zeros_like(candidates)
    for b in range(candidates.size(0)):
        cand = candidates[b].nonzero().squeeze(1).tolist()
        start_flags = starts[b].tolist()
        words: list[list[int]] = []
        for pos in cand:
            if start_flags[pos] or not words:
                words.append([pos])
            else:
                words[-1].append(pos)
        order = scores[b, [w[0] for w in words]].argsort().tolist() if words else []
        budget, taken = int(n[b]), []
        for k in order:
            if len(taken) >= budget:
                break
            if len(taken) + len(words[k]) <= budget:
                taken += words[k]
        selected[b, taken] = True
    return selected


def apply_mask_rule(
    input_ids: torch.Tensor,
    selected: torch.Tensor,
    mask_token_id: int,
    random_ids: torch.Tensor,
    generator: torch.Generator,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 rule on the selected positions -> (masked input_ids, labels).

    Of the selected tokens 80% become [MASK], 10% a random token from ``random_ids`` and 10% stay as they are, so
    the model cannot trust that an unmasked token is right and must keep a good representation of every token.
    Labels hold the original id at selected positions and -100 elsewhere.
    """
    u = torch.rand(input_ids.shape, generator=generator)  # one draw per position decides its fate
    random_tokens = random_ids[torch.randint(len(random_ids), input_ids.shape, generator=generator)]
    to_mask = selected & (u < mask_frac)
    to_random = selected & (u >= mask_frac) & (u < mask_frac + random_frac)
    masked = input_ids.masked_fill(to_mask, mask_token_id)
    masked = torch.where(to_random, random_tokens.to(input_ids.dtype), masked)
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    return masked, labels


@dataclass(frozen=True)
class Masker:
    """Masked-language-model masking: which tokens, how many, and what they become.

    ``mask_prob`` is BERT's 15% (ModernBERT: 30%); ``max_predictions`` caps the masked tokens per sequence
    (BERT: 20 at 128 tokens, 80 at 512); ``whole_word`` masks all the pieces of a word together.
    """

    mask_token_id: int
    special_ids: tuple[int, ...] = field(repr=False)  # never masked, never drawn as random replacements
    vocab_size: int
    mask_prob: float = 0.15
    max_predictions: int | None = None
    whole_word: bool = False
    continuation: tuple[bool, ...] | None = field(default=None, repr=False)  # per id: a '##' piece? (whole_word)
    mask_frac: float = 0.8
    random_frac: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must lie in (0, 1), got {self.mask_prob}")
        if self.mask_frac < 0 or self.random_frac < 0 or self.mask_frac + self.random_frac > 1:
            raise ValueError(f"mask_frac {self.mask_frac} + random_frac {self.random_frac} must lie in [0, 1]")
        if self.whole_word and self.continuation is None:
            raise ValueError("whole-word masking needs continuation flags: build the Masker with Masker.from_tokenizer")

    @classmethod
    def from_tokenizer(cls, tokenizer, **options) -> Masker:
        """Special ids from the tokenizer (every '[...]' token of its vocabulary) and its '##' pieces."""
        vocab = sorted(tokenizer.vocab.items(), key=lambda kv: kv[1])
        specials = tuple(i for t, i in vocab if t.startswith("[") and t.endswith("]"))
        continuation = tuple(t.startswith("##") for t, _ in vocab)
        return cls(tokenizer.mask_token_id, specials, len(vocab), continuation=continuation, **options)

    def replace(self, **changes) -> Masker:
        return dataclasses.replace(self, **changes)

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        cache = self.__dict__.get("_cached")
        if cache is None:
            special = torch.zeros(self.vocab_size, dtype=torch.bool)
            special[list(self.special_ids)] = True
            random_ids = (~special).nonzero().squeeze(1)
            cont = torch.tensor(self.continuation, dtype=torch.bool) if self.continuation is not None else None
            cache = (special, random_ids, cont)
            object.__setattr__(self, "_cached", cache)  # frozen dataclass: a private memo of derived tables
        return cache

    def __call__(
        self, input_ids: torch.Tensor, generator: torch.Generator, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) ids -> (masked ids, labels); padding (attention_mask 0) and special tokens are never chosen."""
        special, random_ids, cont = self._tables()
        if int(input_ids.max()) >= self.vocab_size:
            raise ValueError(
                f"token id {int(input_ids.max())} is outside the masker's {self.vocab_size}-token vocabulary"
            )
        candidates = ~special[input_ids]
        if attention_mask is not None:
            candidates &= attention_mask.bool()
        n = num_to_mask(candidates.sum(1), self.mask_prob, self.max_predictions)
        if self.whole_word:
            selected = select_whole_words(candidates, word_starts(candidates, cont[input_ids]), n, generator)
        else:
            selected = select_tokens(candidates, n, generator)
        return apply_mask_rule(input_ids, selected, self.mask_token_id, random_ids, generator, self.mask_frac,
                               self.random_frac)  # fmt: skip


def mask_instances(instances: list[Instance], masker: Masker, seed: int = 0, chunk: int = 256) -> list[Instance]:
    """Static masking (original BERT): each instance masked once, here, before training (masks repeat each epoch)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(0, len(instances), chunk):  # mask padded chunks at once, then cut each row back to its length
        part = instances[k : k + chunk]
        T = max(len(x) for x in part)
        ids = torch.zeros((len(part), T), dtype=torch.long)
        attn = torch.zeros((len(part), T), dtype=torch.long)
        for i, x in enumerate(part):
            ids[i, : len(x)] = torch.tensor(x.input_ids)
            attn[i, : len(x)] = 1
        masked, labels = masker(ids, g, attn)
        for i, x in enumerate(part):
            n = len(x)
            out.append(Instance(tuple(masked[i, :n].tolist()), x.token_type_ids, x.next_sentence_label,
                                tuple(labels[i, :n].tolist())))  # fmt: skip
    return out
