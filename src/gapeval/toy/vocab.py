"""The joint vocabulary of the built-in model: special tokens, words of the shapes world, image codes."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SPECIALS = ("<pad>", "<bos>", "<eos>", "<img>", "</img>", "<ans>", "<gen>", "<edit>", "<unk>")
PAD, BOS, EOS, IMG, ENDIMG, ANS, GEN, EDIT, UNK = range(len(SPECIALS))


def world_words() -> list[str]:
    """Every word the shapes world's prompts and answers use (both splits), sorted."""
    from gapeval.suites.shapes import tasks

    rng = np.random.default_rng(0)
    words: set[str] = set(str(n) for n in range(10))
    for kind in tasks.KINDS:
        for split in ("train", "test"):
            for _ in range(300):
                s = tasks.sample(kind, rng, split)
                words.update(tokenize_words(s.und_prompt + " " + s.answer + " " + s.gen_prompt))
    return sorted(words)


def tokenize_words(text: str) -> list[str]:
    """Lowercase words and digits (punctuation dropped)."""
    return re.findall(r"[a-z]+|\d", text.lower())


class Vocab:
    """Token ids: specials, then words, then ``n_codes`` image codes."""

    def __init__(self, words: Sequence[str], n_codes: int) -> None:
        self.words = list(words)
        self.n_codes = n_codes
        self.word_base = len(SPECIALS)
        self.code_base = self.word_base + len(self.words)
        self._ids = {w: self.word_base + i for i, w in enumerate(self.words)}

    @property
    def size(self) -> int:
        """Total number of tokens."""
        return self.code_base + self.n_codes

    def encode_text(self, text: str) -> list[int]:
        """Words -> ids (unknown words map to ``<unk>``)."""
        return [self._ids.get(w, UNK) for w in tokenize_words(text)]

    def decode_text(self, ids: Sequence[int]) -> str:
        """Ids -> words (specials and codes are dropped)."""
        return " ".join(self.words[i - self.word_base] for i in ids if self.word_base <= i < self.code_base)

    def codes(self, codes: Sequence[int]) -> list[int]:
        """Image codes -> ids."""
        return [self.code_base + int(c) for c in codes]
