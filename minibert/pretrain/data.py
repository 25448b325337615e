"""Batches for pretraining: instances padded and masked into batches, a resumable stream, and the course's setup
(a WordPiece vocabulary of the training articles, the tokenized corpus, held-out batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..runtime import CACHE_VERSION, cache_dir
from ..text.corpus import wikipedia
from ..text.train import train_wordpiece
from ..text.wordpiece import BertTokenizer
from .instances import Document, Instance, build_instances, cached_documents, split_articles
from .masking import IGNORE_INDEX, Masker, mask_instances


class PretrainingCollator:
    """Instances -> a padded batch: input_ids, token_type_ids, attention_mask, labels, next_sentence_label.

    With a ``masker`` the batch is masked here (dynamic masking, RoBERTa: a fresh mask every time a sequence is
    seen); without one the instances must already be masked (static masking, :func:`mask_instances`).
    """

    def __init__(self, pad_token_id: int, masker: Masker | None = None, pad_to_multiple_of: int = 1) -> None:
        self.pad_token_id, self.masker, self.pad_to_multiple_of = pad_token_id, masker, pad_to_multiple_of

    def __call__(self, instances: list[Instance], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if not instances:
            raise ValueError("cannot collate an empty list of instances")
        m = self.pad_to_multiple_of
        T = -(-max(len(x) for x in instances) // m) * m
        B = len(instances)
        ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)
        types = torch.zeros((B, T), dtype=torch.long)
        attn = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
        for i, x in enumerate(instances):
            n = len(x)
            ids[i, :n] = torch.tensor(x.input_ids)
            types[i, :n] = torch.tensor(x.token_type_ids)
            attn[i, :n] = 1
            if x.labels is not None:
                labels[i, :n] = torch.tensor(x.labels)
        if self.masker is not None:
            if generator is None:
                raise ValueError("dynamic masking needs a torch.Generator for its random draws")
            ids, labels = self.masker(ids, generator, attn)
        elif bool((labels == IGNORE_INDEX).all()):
            raise ValueError("these instances are not masked: pass a Masker (dynamic) or use mask_instances (static)")
        nsp = torch.tensor([x.next_sentence_label for x in instances], dtype=torch.long)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": attn, "labels": labels,
                "next_sentence_label": nsp}  # fmt: skip


class PretrainingStream:
    """Batches of instances in a fresh shuffled order each epoch, forever; resumable from :meth:`state_dict`.

    The order of epoch e and the mask of batch k come from seeds derived from (seed, e, k), so the position
    (epoch, batch) is the whole state: a resumed run and every data-parallel rank see exactly the same batches.
    """

    def __init__(
        self, instances: list[Instance], batch_size: int, collator: PretrainingCollator, seed: int = 0
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(instances) < batch_size:
            raise ValueError(f"{len(instances)} instances cannot fill a batch of {batch_size}; use more data")
        self.instances, self.batch_size, self.collator, self.seed = instances, batch_size, collator, seed
        self.epoch, self.position = 0, 0
        self._order: list[int] | None = None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.instances) // self.batch_size  # the ragged tail of an epoch is dropped

    def _epoch_order(self) -> list[int]:
        if self._order is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(len(self.instances), generator=g).tolist()
        return self._order

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        order = self._epoch_order()
        idx = order[self.position * self.batch_size : (self.position + 1) * self.batch_size]
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + self.position)
        self.position += 1
        return self.collator([self.instances[i] for i in idx], g)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"this stream has seed {self.seed}, the checkpoint's data had seed {state['seed']}")
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


def eval_batches(instances: list[Instance], batch_size: int, collator: PretrainingCollator, seed: int = 0):
    """Held-out batches in a fixed order with fixed masks (the same every evaluation, so scores compare)."""
    for k in range(0, len(instances), batch_size):
        yield collator(instances[k : k + batch_size], torch.Generator().manual_seed(seed * 1_000_003 + k))


# ---------------------------------------------------------------------------------------------------------------
# The course's pretraining setup: a WordPiece vocabulary of the training articles, the tokenized corpus, streams


def pretraining_tokenizer(lang: str = "en", vocab_size: int = 8192):
    """A WordPiece vocabulary trained on the excerpt's training articles (held-out ones excluded), cached.

    Trained by pair frequency (the rule Hugging Face's trainer uses); about 20 s the first time.
    """
    folder = cache_dir() / "pretraining" / f"wordpiece-{lang}-{vocab_size}-v{CACHE_VERSION}"
    if (folder / "vocab.txt").is_file():
        try:
            return BertTokenizer.from_pretrained(folder)
        except ValueError:
            pass  # a damaged vocabulary is retrained
    train, _ = split_articles(wikipedia(lang))
    tokenizer = train_wordpiece([p for a in train for p in a.paragraphs], vocab_size, scoring="frequency")
    tokenizer.save(folder)
    return tokenizer


def pretraining_documents(tokenizer, lang: str = "en") -> tuple[list[Document], list[Document]]:
    """(training documents, held-out documents) of the excerpt, tokenized (cached)."""
    train, held = split_articles(wikipedia(lang))
    return cached_documents(train, tokenizer, f"wiki-{lang}-train"), cached_documents(
        held, tokenizer, f"wiki-{lang}-heldout"
    )


@dataclass
class PretrainingData:
    """What a pretraining run consumes: a stream of training batches and fixed held-out batches."""

    train: PretrainingStream
    eval: list[dict[str, torch.Tensor]]
    masker: Masker
    tokenizer: object


def make_pretraining_data(
    tokenizer,
    lang: str = "en",
    batch_size: int = 32,
    max_seq_length: int = 128,
    mask_prob: float = 0.15,
    max_predictions: int | None = 20,
    nsp: bool = True,
    pairs: str = "balanced",
    whole_word: bool = False,
    static: bool = False,
    dupe_factor: int = 1,
    short_seq_prob: float = 0.1,
    max_documents: int | None = None,
    eval_batch_size: int = 64,
    max_eval_batches: int | None = None,
    seed: int = 0,
) -> PretrainingData:
    """The Wikipedia excerpt as BERT pretraining data: NSP pairs (half of them is-next, or Google's rule with
    ``pairs="google"``) or single segments, masked statically (masks drawn once, ``dupe_factor`` copies) or
    dynamically (a new mask every time), plus held-out batches."""
    train_docs, held_docs = pretraining_documents(tokenizer, lang)
    if max_documents is not None:
        train_docs = train_docs[:max_documents]
    masker = Masker.from_tokenizer(tokenizer, mask_prob=mask_prob, max_predictions=max_predictions,
                                   whole_word=whole_word)  # fmt: skip
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    options = dict(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, nsp=nsp, pairs=pairs)
    train = build_instances(train_docs, cls_id, sep_id, dupe_factor=dupe_factor, seed=seed, **options)
    if static:
        train = mask_instances(train, masker, seed=seed)
    collator = PretrainingCollator(pad_id, None if static else masker)
    held = build_instances(held_docs, cls_id, sep_id, dupe_factor=1, seed=seed + 1, **options)
    held = mask_instances(held, masker, seed=seed + 1)  # fixed masks: every evaluation scores the same tokens
    batches = list(eval_batches(held, eval_batch_size, PretrainingCollator(pad_id)))
    if max_eval_batches is not None:
        batches = batches[:max_eval_batches]
    return PretrainingData(PretrainingStream(train, batch_size, collator, seed), batches, masker, tokenizer)
