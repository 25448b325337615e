"""Each chapter's exercises and concept questions, keyed by id ("04.1", "04.Q1"): cases, references, hints.

One module per chapter, named like its notebook (``ch04_attention.py`` for ``solutions/04_attention.ipynb``); each
defines ``ITEMS``, in the order of the notebook. A module is imported only when one of its ids is checked.
"""

from __future__ import annotations

import importlib

from ..spec import Exercise, Question

MODULES = {
    "00": "ch00_warmup",
    "01": "ch01_word2vec",
    "02": "ch02_contextual_embeddings",
    "03": "ch03_wordpiece",
    "04": "ch04_attention",
    "05": "ch05_bert_encoder",
    "06": "ch06_pretraining_data",
    "07": "ch07_pretraining",
    "08": "ch08_fine_tuning",
    "09": "ch09_real_bert",
    "10": "ch10_modernbert",
    "11": "ch11_eurobert",
}


def items(chapter: str) -> list[Exercise | Question]:
    """The exercises and questions of a chapter ("04"), in the order of its notebook."""
    if chapter not in MODULES:
        raise KeyError(f"no chapter {chapter!r}; the chapters with exercises are {', '.join(MODULES)}")
    return list(importlib.import_module(f"{__name__}.{MODULES[chapter]}").ITEMS)


def get(item_id: str) -> Exercise | Question:
    """The exercise or question with this id, e.g. "04.1" or "04.Q1"."""
    chapter = str(item_id).split(".")[0]
    found = {i.id: i for i in items(chapter)} if chapter in MODULES else {}
    if item_id not in found:
        known = ", ".join(found) if found else ", ".join(MODULES)
        raise KeyError(f"no exercise {item_id!r}; " + (f"chapter {chapter} has {known}" if found else
                       f"ids look like '04.1' (chapter 04, exercise 1); chapters: {known}"))  # fmt: skip
    return found[item_id]
