"""The course's text: Wikipedia excerpts shipped in gensim's test data, cleaned into articles and sentences, cached."""

from __future__ import annotations

import bz2
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write
from ..runtime import CACHE_VERSION, cache_dir

WIKI_DUMPS = {
    "en": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "bg": "bgwiki-latest-pages-articles-shortened.xml.bz2",
}


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: tuple[str, ...]  # running text, one paragraph each; headings and markup removed

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)


def gensim_datapath(name: str) -> str:
    try:  # gensim is optional (the course extra): imported only where its data or wiki parser is needed
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
    from gensim.corpora.wikicorpus import filter_wiki  # optional, as in gensim_datapath

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
    from gensim.corpora.wikicorpus import extract_pages  # optional, as in gensim_datapath

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
