"""Text in many languages from what is installed, byte-level BPE vocabularies, and fertility (tokens per word).

Translation catalogues (gettext ``.mo`` files) hold the same messages in dozens of languages: every message of a
program, translated. Read side by side they are a parallel corpus, so the fertility of a vocabulary can be
compared across languages on the same content. They come with installed packages: Python packages ship a few
(``site-packages/**/LC_MESSAGES``), the operating system's packages many more (``/usr/share/locale``: apt,
coreutils, glib, gtk, ...). How much there is depends on the machine: :func:`available_languages` says.

A catalogue message is short interface text ("Could not open file %s"), not running prose: a fair test of how a
vocabulary splits each language's words, a poor one of anything else.
"""

from __future__ import annotations

import functools
import gettext
import hashlib
import os
import re
import struct
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Scripts that do not separate words with spaces: their "tokens per word" is undefined, compare them with English
NO_SPACES = ("ja", "zh", "zh_CN", "zh_TW", "th")


def locale_roots() -> list[Path]:
    """Where installed packages keep their translation catalogues: site-packages, then the system's locale folder."""
    roots = [Path(sysconfig.get_paths()["purelib"]), Path("/usr/share/locale"), Path("/usr/local/share/locale")]
    return [r for r in roots if r.is_dir()]


@functools.cache
def _message_folders(root: Path) -> tuple[Path, ...]:
    """Every ``<lang>/LC_MESSAGES`` folder under ``root`` (walked once per root: site-packages is large)."""
    if (root / "en" / "LC_MESSAGES").is_dir() or (root / "de" / "LC_MESSAGES").is_dir():
        return tuple(sorted(p for p in root.glob("*/LC_MESSAGES") if p.is_dir()))  # a locale folder itself
    found = []
    for folder, subdirs, _ in os.walk(root):
        if os.path.basename(folder) == "LC_MESSAGES":
            found.append(Path(folder))
            subdirs.clear()
    return tuple(sorted(found))


def catalogue_files(lang: str, roots: Sequence[Path] | None = None) -> list[Path]:
    """The ``.mo`` files of one language (``lang`` as in the folder name: 'de', 'pt_BR', 'zh_CN'), sorted."""
    found: set[Path] = set()
    for root in locale_roots() if roots is None else roots:
        for folder in _message_folders(Path(root)):
            if folder.parent.name == lang:
                found.update(folder.glob("*.mo"))
    return sorted(found)


_FORMAT = re.compile(r"%(\([^)]*\))?[-#0 +]*\d*(\.\d+)?[hlLqjzt]*[a-zA-Z%]|\{[^{}]*\}|<[^<>]*>|\\[nt]")
_ACCEL = re.compile(r"(?<=\w)_(?=\w)|(?<!\w)_(?=\w)|&(?=\w)|\(_\w\)|\(&\w\)")


def clean_message(text: str) -> str:
    """Drop what is not language: format fields (%s, {0}), markup, keyboard accelerators (_File, &Open)."""
    text = _ACCEL.sub("", _FORMAT.sub(" ", text))
    return " ".join(text.split())


def read_catalogue(path: str | Path) -> dict[str, str]:
    """msgid -> msgstr of one ``.mo`` file (singular messages only; the header and empty ones dropped)."""
    try:
        with open(path, "rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog
    except (OSError, UnicodeDecodeError, ValueError, struct.error):  # a malformed catalogue is skipped, not fatal
        return {}
    return {k: v for k, v in catalog.items() if isinstance(k, str) and k and isinstance(v, str) and v}


def messages(lang: str, roots: Sequence[Path] | None = None) -> dict[tuple[str, str], str]:
    """(catalogue name, English msgid) -> translation, as the catalogues hold them (see :func:`clean_message`)."""
    out: dict[tuple[str, str], str] = {}
    for path in catalogue_files(lang, roots):
        out.update({(path.stem, src): dst for src, dst in read_catalogue(path).items()})
    return out


def available_languages(languages: Iterable[str], roots: Sequence[Path] | None = None) -> dict[str, int]:
    """How many translated messages each language has here (0 = none: the language cannot be measured)."""
    return {lang: len(messages(lang, roots)) for lang in languages}


@dataclass
class ParallelCorpus:
    """The same messages in several languages: ``text[lang][i]`` translates ``text['en'][i]``."""

    text: dict[str, list[str]]

    @property
    def languages(self) -> list[str]:
        return list(self.text)

    def __len__(self) -> int:
        return len(self.text["en"])

    def words(self, lang: str) -> int:
        return sum(len(t.split()) for t in self.text[lang])

    def split(self, test_fraction: float = 0.2) -> tuple[ParallelCorpus, ParallelCorpus]:
        """Train/test by a hash of the English message: the same split on every machine and for every language."""
        test = [int(hashlib.md5(t.encode()).hexdigest(), 16) % 1000 < 1000 * test_fraction for t in self.text["en"]]
        pick = lambda keep: {k: [t for t, s in zip(v, test) if s == keep] for k, v in self.text.items()}  # noqa: E731
        return ParallelCorpus(pick(False)), ParallelCorpus(pick(True))


def parallel_corpus(
    languages: Sequence[str], roots: Sequence[Path] | None = None, min_messages: int = 200, min_words: int = 3
) -> ParallelCorpus:
    """Messages translated into every one of ``languages`` (English first), cleaned, in a fixed order.

    Keeps messages of at least ``min_words`` English words whose translations differ from the English (an
    untranslated message is English text under another language's name). Refuses languages with fewer than
    ``min_messages`` messages here rather than measure them on a handful.
    """
    per_lang = {lang: messages(lang, roots) for lang in languages if lang != "en"}
    thin = {lang: len(m) for lang, m in per_lang.items() if len(m) < min_messages}
    if thin or not per_lang:
        raise ValueError(
            f"too few translated messages on this machine for {thin or languages} (need {min_messages}); "
            "leave these languages out (see available_languages) or install packages that ship their catalogues"
        )
    text: dict[str, list[str]] = {"en": [], **{lang: [] for lang in per_lang}}
    for key in sorted(set.intersection(*(set(m) for m in per_lang.values()))):
        en = clean_message(key[1])
        if len(en.split()) < min_words:
            continue
        translations = {lang: clean_message(m[key]) for lang, m in per_lang.items()}
        if all(t and t != en for t in translations.values()):
            text["en"].append(en)
            for lang, t in translations.items():
                text[lang].append(t)
    return ParallelCorpus(text)


# ---------------------------------------------------------------------------------------------------------------
# Vocabularies and fertility


def train_bytelevel_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A byte-level BPE vocabulary (GPT-2's scheme, as in ModernBERT and EuroBERT) trained with ``tokenizers``.

    :func:`minibert.text.train_bpe` learns the same merges in Python; this is the fast trainer, for measurements.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # optional (the course extra)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def count_tokens(tokenizer, texts: Sequence[str]) -> int:
    """Tokens of ``texts`` under a ``tokenizers.Tokenizer`` (batched) or any ``text -> list`` callable."""
    if hasattr(tokenizer, "encode_batch"):
        return sum(len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False))
    return sum(len(tokenizer(t)) for t in texts)


def fertility(tokenizer, texts: Sequence[str]) -> float:
    """Tokens per word (words split on whitespace): 1.0 = every word is one token; higher = words cut up."""
    words = sum(len(t.split()) for t in texts)
    if words == 0:
        raise ValueError("no words to measure fertility on")
    return count_tokens(tokenizer, texts) / words


@dataclass
class FertilityRow:
    vocabulary: str
    language: str
    tokens_per_word: float | None  # None for scripts without spaces between words
    vs_english: float  # tokens of this language / tokens of the same messages in English ("tokenizer parity")


def fertility_table(vocabularies: dict[str, object], corpus: ParallelCorpus) -> list[FertilityRow]:
    """Fertility of every vocabulary on every language of a parallel corpus (same messages, so comparable)."""
    rows = []
    for name, tok in vocabularies.items():
        english = count_tokens(tok, corpus.text["en"])
        for lang in corpus.languages:
            n = count_tokens(tok, corpus.text[lang])
            per_word = None if lang in NO_SPACES else n / max(corpus.words(lang), 1)
            rows.append(FertilityRow(name, lang, per_word, n / english))
    return rows


def table_text(rows: list[FertilityRow], value: Callable[[FertilityRow], float | None] | None = None) -> str:
    """Languages as rows, vocabularies as columns: tokens per word (or 'vs English' for scripts without spaces)."""
    value = value or (lambda r: r.tokens_per_word)
    vocabs = list(dict.fromkeys(r.vocabulary for r in rows))
    langs = list(dict.fromkeys(r.language for r in rows))
    cell = {(r.vocabulary, r.language): value(r) for r in rows}
    lines = ["language  " + "".join(f"{v:>16}" for v in vocabs)]
    for lang in langs:
        vals = [cell[(v, lang)] for v in vocabs]
        lines.append(f"{lang:<10}" + "".join(f"{'-' if x is None else f'{x:.2f}':>16}" for x in vals))
    return "\n".join(lines)
