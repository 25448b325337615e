"""The course's text: Wikipedia excerpts shipped in gensim's test data, cleaned into articles and cached."""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write

WIKI_DUMPS = {
    "en": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "bg": "bgwiki-latest-pages-articles-shortened.xml.bz2",
}
CACHE_VERSION = 1


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: tuple[str, ...]  # running text, one paragraph each; headings and markup removed

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)


def cache_dir() -> Path:
    """$MINIBERT_CACHE, else ~/.cache/minibert."""
    return Path(os.environ.get("MINIBERT_CACHE") or Path.home() / ".cache" / "minibert")


def gensim_datapath(name: str) -> str:
    try:
        from gensim.test.utils import datapath
    except ImportError:
        raise ImportError("the course's text ships with gensim's test data: pip install gensim") from None
    path = datapath(name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name} is not in gensim's test data at {path}; reinstall gensim")
    return path


_MARKUP = re.compile(r"'{2,}")  # ''italic'' and '''bold'''
_HEADING = re.compile(r"^=+.*=+$")
_SPACES = re.compile(r"[ \t]+")


def clean_wiki(markup: str) -> list[str]:
    """Wiki markup -> paragraphs of plain text (gensim's filter_wiki, then emphasis, headings and lists)."""
    from gensim.corpora.wikicorpus import filter_wiki

    paragraphs = []
    for line in filter_wiki(markup).splitlines():
        line = _SPACES.sub(" ", _MARKUP.sub("", line)).strip()
        if not line or _HEADING.match(line) or line.startswith(("|", "!", "{", "}")):
            continue
        line = line.lstrip("*#:; ").strip()
        if len(line.split()) >= 3:  # drop stray fragments (list stubs, leftover template bits)
            paragraphs.append(line)
    return paragraphs


def _parse_dump(path: str) -> list[Article]:
    from gensim.corpora.wikicorpus import extract_pages

    articles = []
    with bz2.open(path) as f:
        for title, markup, _ in extract_pages(f, filter_namespaces=("0",)):
            if markup.lstrip().lower().startswith("#redirect") or not markup.strip():
                continue
            paragraphs = clean_wiki(markup)
            if paragraphs:
                articles.append(Article(title, tuple(paragraphs)))
    return articles


def wikipedia(lang: str = "en", refresh: bool = False) -> list[Article]:
    """The Wikipedia excerpt for ``lang`` ('en': about 106 articles, 0.46 M words; 'bg': a short one).

    Parsing takes a few seconds; the result is cached as JSON under :func:`cache_dir`.
    """
    if lang not in WIKI_DUMPS:
        raise ValueError(f"no Wikipedia excerpt for {lang!r}; available: {sorted(WIKI_DUMPS)}")
    path = cache_dir() / f"wiki-{lang}-v{CACHE_VERSION}.json"
    if path.is_file() and not refresh:
        try:
            return [Article(a["title"], tuple(a["paragraphs"])) for a in json.loads(path.read_text(encoding="utf-8"))]
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt
    articles = _parse_dump(gensim_datapath(WIKI_DUMPS[lang]))
    payload = json.dumps([{"title": a.title, "paragraphs": list(a.paragraphs)} for a in articles], ensure_ascii=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(payload, encoding="utf-8"))
    return articles


def wikipedia_lines(lang: str = "en") -> list[str]:
    """Every paragraph of the excerpt, one string each (the unit tokenizers and word2vec train on)."""
    return [p for a in wikipedia(lang) for p in a.paragraphs]


# ---------------------------------------------------------------------------------------------------------------
# Pretraining data (Devlin et al., 2018, and Google's create_pretraining_data.py): documents split into sentences,
# segment A / segment B instances for next-sentence prediction, and masked-language-model masking.

NSP_IS_NEXT, NSP_RANDOM = 0, 1  # next_sentence_label: 0 = B follows A, 1 = B is a random segment (BERT's convention)
IGNORE_INDEX = -100  # label of positions the MLM loss skips (PyTorch's cross_entropy default)

# words that end with a full stop without ending the sentence
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "mt", "ft", "no", "vs", "etc", "e.g", "i.e", "c", "ca", "cf",
    "vol", "pp", "fig", "gen", "col", "lt", "sgt", "capt", "gov", "sen", "rev", "inc", "ltd", "co", "corp", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "est", "op", "ed", "eds",
}  # fmt: skip
_BOUNDARY = re.compile(r"([.!?][\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")  # end punctuation, space, a capital or digit
_LAST_WORD = re.compile(r"(\S+)$")


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences: a full stop, ! or ? followed by a space and a capital letter or digit.

    Rule-based, like the splitters BERT's data was made with: abbreviations (``Dr.``, ``e.g.``), initials
    (``J. R. R. Tolkien``) and dotted acronyms (``U.S.``) do not end a sentence.
    """
    sentences, start = [], 0
    for m in _BOUNDARY.finditer(text):
        if m.group(1)[0] == ".":
            word = _LAST_WORD.search(text[start : m.start(1)])
            w = word.group(1).lstrip("(\"'[").lower() if word else ""
            if w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha()) or "." in w:
                continue
        sentence = text[start : m.end(1)].strip()
        if sentence:
            sentences.append(sentence)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


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
                for _ in range(10):  # a document other than this one
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                random_doc = documents[other]
                for sentence in random_doc[rng.randint(0, len(random_doc) - 1) :]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
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
) -> list[Instance]:
    """Every document turned into instances ``dupe_factor`` times (different splits each time), shuffled.

    ``nsp=False`` packs sentences into single-segment sequences (RoBERTa, ModernBERT, EuroBERT).
    """
    import random

    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text next to [CLS] and [SEP]")
    if nsp and len(documents) < 2:
        raise ValueError("next-sentence prediction needs at least two documents to draw random segments from")
    rng = random.Random(seed)
    instances = []
    for _ in range(dupe_factor):
        for i in range(len(documents)):
            if nsp:
                instances += instances_from_document(documents, i, max_seq_length, short_seq_prob, rng, cls_id, sep_id)
            else:
                instances += single_segment_instances(documents[i], max_seq_length, short_seq_prob, rng, cls_id, sep_id)
    rng.shuffle(instances)
    return instances


# ---------------------------------------------------------------------------------------------------------------
# Masking


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
        import dataclasses

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


# ---------------------------------------------------------------------------------------------------------------
# Batches


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
    from .tokenization import BertTokenizer, train_wordpiece

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
    whole_word: bool = False,
    static: bool = False,
    dupe_factor: int = 1,
    short_seq_prob: float = 0.1,
    max_documents: int | None = None,
    eval_batch_size: int = 64,
    max_eval_batches: int | None = None,
    seed: int = 0,
) -> PretrainingData:
    """The Wikipedia excerpt as BERT pretraining data: NSP pairs (or single segments), masked statically (masks
    drawn once, ``dupe_factor`` copies) or dynamically (a new mask every time), plus held-out batches."""
    train_docs, held_docs = pretraining_documents(tokenizer, lang)
    if max_documents is not None:
        train_docs = train_docs[:max_documents]
    masker = Masker.from_tokenizer(tokenizer, mask_prob=mask_prob, max_predictions=max_predictions,
                                   whole_word=whole_word)  # fmt: skip
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    options = dict(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, nsp=nsp)
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
