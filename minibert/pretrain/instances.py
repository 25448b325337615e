"""Pretraining instances (Devlin et al., 2018, and Google's create_pretraining_data.py): documents split into
sentences, then segment A / segment B pairs for next-sentence prediction, or single segments.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from ..files import atomic_write
from ..runtime import CACHE_VERSION, cache_dir
from ..text.corpus import Article, split_sentences

NSP_IS_NEXT, NSP_RANDOM = 0, 1  # next_sentence_label: 0 = B follows A, 1 = B is a random segment (BERT's convention)


Document = list[list[int]]  # one article: its sentences, each a list of token ids (no special tokens)


def tokenize_documents(articles: list[Article], tokenizer) -> list[Document]:
    """Articles -> documents of tokenized sentences (empty sentences and empty documents dropped)."""
    docs = []
    for article in articles:
        doc = [tokenizer.encode(s, add_special_tokens=False) for p in article.paragraphs for s in split_sentences(p)]
        doc = [s for s in doc if s]
        if doc:
            docs.append(doc)
    return docs


def _vocab_fingerprint(tokenizer) -> str:
    tokens = sorted(tokenizer.vocab.items(), key=lambda kv: kv[1])
    lower = getattr(tokenizer, "lowercase", getattr(tokenizer, "do_lower_case", ""))
    return hashlib.sha1(("\n".join(t for t, _ in tokens) + f"|{lower}").encode()).hexdigest()[:12]


def cached_documents(articles: list[Article], tokenizer, name: str) -> list[Document]:
    """:func:`tokenize_documents`, cached under :func:`cache_dir` by ``name`` (e.g. 'wiki-en-train') and vocabulary.

    Tokenizing the whole excerpt with the pure-Python WordPiece takes a few seconds; reading the cache, a fraction.
    """
    titles = hashlib.sha1("\n".join(a.title for a in articles).encode()).hexdigest()[:8]
    path = cache_dir() / "pretraining" / f"{name}-{titles}-{_vocab_fingerprint(tokenizer)}-v{CACHE_VERSION}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                tokens, sent_ends, doc_ends = z["tokens"].tolist(), z["sentence_ends"].tolist(), z["document_ends"]
            sentences = [tokens[a:b] for a, b in zip([0] + sent_ends[:-1], sent_ends)]
            bounds = [0] + doc_ends.tolist()
            return [sentences[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt
    docs = tokenize_documents(articles, tokenizer)
    lengths = [len(s) for d in docs for s in d]
    arrays = {
        "tokens": np.array([t for d in docs for s in d for t in s], dtype=np.int32),
        "sentence_ends": np.cumsum(lengths, dtype=np.int64),
        "document_ends": np.cumsum([len(d) for d in docs], dtype=np.int64),
    }

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    return docs


def split_articles(articles: list[Article], heldout_every: int = 10) -> tuple[list[Article], list[Article]]:
    """(train, held-out): every ``heldout_every``-th article is kept for evaluation (about 10% of the text)."""
    held = [a for i, a in enumerate(articles) if i % heldout_every == heldout_every // 2]
    train = [a for i, a in enumerate(articles) if i % heldout_every != heldout_every // 2]
    return train, held


@dataclass(frozen=True)
class Instance:
    """One pretraining sequence: ``[CLS] A [SEP] B [SEP]`` (or ``[CLS] A [SEP]`` without NSP).

    ``labels`` is set for statically masked instances: the original id at masked positions, -100 elsewhere
    (``input_ids`` then holds the masked sequence).
    """

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    next_sentence_label: int = NSP_IS_NEXT
    labels: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng) -> None:
    """Trim the pair in place to ``max_num_tokens``: one token at a time from the longer segment, from its front
    or its back at random (so the model does not learn that sequences always end at a sentence end)."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def pair_instance(a: list[int], b: list[int], cls_id: int, sep_id: int, label: int) -> Instance:
    """``[CLS] A [SEP] B [SEP]`` with segment ids 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``."""
    ids = [cls_id, *a, sep_id, *b, sep_id]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return Instance(tuple(ids), tuple(types), label)


def instances_from_document(
    documents: list[Document],
    index: int,
    max_seq_length: int,
    short_seq_prob: float,
    rng,
    cls_id: int,
    sep_id: int,
) -> list[Instance]:
    """Google's ``create_instances_from_document``: NSP pairs from one document.

    Sentences are gathered into a chunk until it reaches the target length; a random split point makes A; B is the
    rest of the chunk (label 0) or, half of the time and whenever the chunk is a single sentence, a stretch of a
    random other document (label 1), and then the chunk's unused sentences are put back for the next instance.
    With probability ``short_seq_prob`` a chunk aims at a random shorter length, so the model also sees short
    inputs (as it will when fine-tuned).
    """
    document = documents[index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    target = max_num_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_num_tokens)
    instances: list[Instance] = []
    chunk: list[list[int]] = []
    length, i = 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            tokens_b: list[int] = []
            if len(chunk) == 1 or rng.random() < 0.5:
                label = NSP_RANDOM
                tokens_b = random_segment(documents, index, target - len(tokens_a), rng)
                i -= len(chunk) - a_end  # put the unused sentences back
            else:
                label = NSP_IS_NEXT
                tokens_b = [t for s in chunk[a_end:] for t in s]
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            if tokens_a and tokens_b:
                instances.append(pair_instance(tokens_a, tokens_b, cls_id, sep_id, label))
            chunk, length = [], 0
            target = max_num_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_num_tokens)
        i += 1
    return instances


def random_segment(documents: list[Document], index: int, room: int, rng) -> list[int]:
    """A random-next B: from a random sentence of a random other document on, until ``room`` tokens are filled."""
    for _ in range(10):  # a document other than this one
        other = rng.randint(0, len(documents) - 1)
        if other != index:
            break
    random_doc = documents[other]
    tokens: list[int] = []
    for sentence in random_doc[rng.randint(0, len(random_doc) - 1) :]:
        tokens.extend(sentence)
        if len(tokens) >= room:
            break
    return tokens


def balanced_instances_from_document(
    documents: list[Document],
    index: int,
    max_seq_length: int,
    short_seq_prob: float,
    rng,
    cls_id: int,
    sep_id: int,
) -> list[Instance]:
    """NSP pairs from one document, half of them is-next at every sequence length.

    Google's rule (:func:`instances_from_document`) gives a chunk of one sentence a random B: at 32 tokens most
    chunks are one sentence, and about 3 pairs in 4 are random-next (a model that always answers "random" scores
    75%). Here the label is drawn first, and the pair is built to fit it. Is-next: A is the start of the chunk and B
    its rest; when the chunk is one sentence, B is taken from the sentences after it (they are not used up: they
    start the next chunk). Random-next: as Google's, and the unused sentences of the chunk are put back. The last
    sentence of a document has nothing after it: when it must be is-next it becomes a random pair instead, and
    the next pair of the run is is-next, so the labels stay balanced.
    """
    document = documents[index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]

    def new_target() -> int:
        return max_num_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_num_tokens)

    instances: list[Instance] = []
    owed = 0  # is-next pairs owed because the document ended where one was drawn
    i, target = 0, new_target()
    while i < len(document):
        chunk, length = [], 0
        while i < len(document) and (not chunk or length < target):
            chunk.append(document[i])
            length += len(document[i])
            i += 1
        want_next = owed > 0 or rng.random() < 0.5
        a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
        tokens_a = [t for s in chunk[:a_end] for t in s]
        tokens_b: list[int] = []
        if want_next and (len(chunk) >= 2 or i < len(document)):
            label, owed = NSP_IS_NEXT, max(0, owed - 1)
            if len(chunk) >= 2:
                tokens_b = [t for s in chunk[a_end:] for t in s]
            else:  # one sentence: B is what follows it, which stays for the next chunk as well
                for sentence in document[i:]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
        else:
            owed += want_next  # the document ended: this pair is random, the next one is-next
            label = NSP_RANDOM
            tokens_b = random_segment(documents, index, target - len(tokens_a), rng)
            i -= len(chunk) - a_end  # put the unused sentences back
        truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
        if tokens_a and tokens_b:
            instances.append(pair_instance(tokens_a, tokens_b, cls_id, sep_id, label))
        target = new_target()
    return instances


def single_segment_instances(
    document: Document, max_seq_length: int, short_seq_prob: float, rng, cls_id: int, sep_id: int
) -> list[Instance]:
    """``[CLS] sentences [SEP]`` packed up to the target length (RoBERTa's doc-sentences, no NSP)."""
    max_num_tokens = max_seq_length - 2
    instances, current = [], []

    def new_target() -> int:
        return max_num_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_num_tokens)

    target = new_target()
    for sentence in document:
        for start in range(0, len(sentence), max_num_tokens):  # a sentence longer than a sequence is cut up
            piece = sentence[start : start + max_num_tokens]
            if current and len(current) + len(piece) > target:
                instances.append(Instance((cls_id, *current[:max_num_tokens], sep_id), (0,) * (len(current) + 2)))
                current, target = [], new_target()
            current.extend(piece)
    if current:
        current = current[:max_num_tokens]
        instances.append(Instance((cls_id, *current, sep_id), (0,) * (len(current) + 2)))
    return instances


def build_instances(
    documents: list[Document],
    cls_id: int,
    sep_id: int,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    nsp: bool = True,
    dupe_factor: int = 1,
    seed: int = 0,
    pairs: str = "balanced",
) -> list[Instance]:
    """Every document turned into instances ``dupe_factor`` times (different splits each time), shuffled.

    ``pairs="balanced"`` (:func:`balanced_instances_from_document`) makes half the NSP pairs is-next at any length;
    ``pairs="google"`` is Google's original rule (:func:`instances_from_document`), which at short lengths makes
    most pairs random-next. ``nsp=False`` packs sentences into single-segment sequences (RoBERTa, ModernBERT,
    EuroBERT).
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text next to [CLS] and [SEP]")
    if pairs not in PAIR_RULES:
        raise ValueError(f"pairs={pairs!r}: use one of {', '.join(PAIR_RULES)}")
    if nsp and len(documents) < 2:
        raise ValueError("next-sentence prediction needs at least two documents to draw random segments from")
    rng = random.Random(seed)
    instances = []
    for _ in range(dupe_factor):
        for i in range(len(documents)):
            if nsp:
                instances += PAIR_RULES[pairs](documents, i, max_seq_length, short_seq_prob, rng, cls_id, sep_id)
            else:
                instances += single_segment_instances(documents[i], max_seq_length, short_seq_prob, rng, cls_id, sep_id)
    rng.shuffle(instances)
    return instances


PAIR_RULES = {"balanced": balanced_instances_from_document, "google": instances_from_document}
