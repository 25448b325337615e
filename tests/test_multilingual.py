"""Multilingual corpora from translation catalogues, byte-level BPE vocabularies and fertility."""

import struct

import pytest

from minibert.text import multilingual as ml


def write_mo(path, catalog: dict[str, str]) -> None:
    """A GNU gettext .mo file (the format msgfmt writes): header, two offset tables, then the strings."""
    items = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **catalog}.items())
    ids, strs = [k.encode() for k, _ in items], [v.encode() for _, v in items]
    n = len(items)
    start = 7 * 4 + 16 * n  # header, then the two tables of (length, offset)
    offsets, blob = [], b""
    for s in ids + strs:
        offsets.append((len(s), start + len(blob)))
        blob += s + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    tables = b"".join(struct.pack("<2I", *o) for o in offsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + tables + blob)


ENGLISH = [f"Could not open the file number {i} for reading" for i in range(30)]


@pytest.fixture()
def locale_root(tmp_path):
    de = {m: m.replace("Could not open the file number", "Konnte Datei Nummer nicht öffnen:") for m in ENGLISH}
    fr = {m: m.replace("Could not open the file number", "Impossible d'ouvrir le fichier") for m in ENGLISH[:20]}
    de["_Open %s"] = "Ö_ffnen %s"
    de["Already English in every language"] = "Already English in every language"  # untranslated: dropped
    write_mo(tmp_path / "de" / "LC_MESSAGES" / "app.mo", de)
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "app.mo", fr)
    (tmp_path / "fr" / "LC_MESSAGES" / "broken.mo").write_bytes(b"not a catalogue")  # skipped, not fatal
    return tmp_path


def test_clean_message_drops_format_fields_markup_and_accelerators():
    assert ml.clean_message("_Open %s in <b>%(name)s</b> or {0}") == "Open in or"
    assert ml.clean_message("&Save  the  file") == "Save the file"


def test_parallel_corpus_aligns_languages_on_the_same_messages(locale_root):
    assert ml.available_languages(["de", "fr", "xx"], [locale_root]) == {"de": 32, "fr": 20, "xx": 0}
    c = ml.parallel_corpus(["en", "de", "fr"], [locale_root], min_messages=10)
    assert c.languages == ["en", "de", "fr"] and len(c) == 20  # only what both languages translate
    i = c.text["en"].index("Could not open the file number 7 for reading")
    assert c.text["de"][i].startswith("Konnte Datei Nummer nicht öffnen: 7")
    assert c.text["fr"][i] == "Impossible d'ouvrir le fichier 7 for reading"
    train, test = c.split(0.5)
    assert len(train) + len(test) == 20 and 0 < len(test) < 20
    assert train.split(0.5)[0].text == train.split(0.5)[0].text  # deterministic


def test_too_little_text_is_refused_with_advice(locale_root):
    with pytest.raises(ValueError, match="too few translated messages.*'fr': 20"):
        ml.parallel_corpus(["en", "de", "fr"], [locale_root], min_messages=25)


def test_fertility_counts_tokens_per_word():
    assert ml.fertility(lambda t: list(t.replace(" ", "")), ["ab cd", "efg"]) == 7 / 3
    with pytest.raises(ValueError):
        ml.fertility(str.split, ["   "])


def test_a_multilingual_vocabulary_splits_other_languages_less():
    english = ["the quick brown fox jumps over the lazy dog while the cat sleeps"] * 50
    german = ["der schnelle braune fuchs springt über den faulen hund während die katze schläft"] * 50
    corpus = ml.ParallelCorpus({"en": english[:1], "de": german[:1]})
    vocabs = {
        "english": ml.train_bytelevel_bpe(english, 300),
        "multilingual": ml.train_bytelevel_bpe(english + german, 300),
    }
    rows = {(r.vocabulary, r.language): r for r in ml.fertility_table(vocabs, corpus)}
    assert rows[("english", "en")].tokens_per_word == pytest.approx(1.0)
    assert rows[("multilingual", "de")].tokens_per_word < rows[("english", "de")].tokens_per_word
    assert rows[("english", "de")].vs_english > 1.5
    assert "multilingual" in ml.table_text(list(rows.values()))


def test_installed_catalogues_if_any_give_real_sentences():
    langs = ml.available_languages(["de", "fr"])
    if min(langs.values()) < 200:
        pytest.skip(f"this machine has few translation catalogues: {langs}")
    c = ml.parallel_corpus(["en", "de", "fr"])
    assert len(c) > 100 and c.words("de") > 500
