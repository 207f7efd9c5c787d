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
    """Token ids: specials, then words, then ``n_codes`` image codes, then any words added later.

    Words added after training (``extra``, e.g. the names a knowledge-injection experiment teaches) go
    after the image codes, so every id the trained model already knows keeps its meaning.
    """

    def __init__(self, words: Sequence[str], n_codes: int, extra: Sequence[str] = ()) -> None:
        self.words = list(words)
        self.extra = list(extra)
        self.n_codes = n_codes
        self.word_base = len(SPECIALS)
        self.code_base = self.word_base + len(self.words)
        self.extra_base = self.code_base + n_codes
        self._ids = {w: self.word_base + i for i, w in enumerate(self.words)}
        self._ids.update({w: self.extra_base + i for i, w in enumerate(self.extra)})

    @property
    def size(self) -> int:
        """Total number of tokens."""
        return self.extra_base + len(self.extra)

    def knows(self, word: str) -> bool:
        """Whether ``word`` has its own id."""
        return word in self._ids

    def with_words(self, words: Sequence[str]) -> Vocab:
        """A vocabulary with ``words`` it does not know yet appended (in the order given)."""
        new = [w for w in dict.fromkeys(words) if w not in self._ids]
        return Vocab(self.words, self.n_codes, [*self.extra, *new])

    def word_ids(self) -> list[int]:
        """Ids of every word (the tokens an answer may use)."""
        return [*range(self.word_base, self.code_base), *range(self.extra_base, self.size)]

    def encode_text(self, text: str) -> list[int]:
        """Words -> ids (unknown words map to ``<unk>``)."""
        return [self._ids.get(w, UNK) for w in tokenize_words(text)]

    def decode_text(self, ids: Sequence[int]) -> str:
        """Ids -> words (specials and codes are dropped)."""
        out = []
        for i in ids:
            if self.word_base <= i < self.code_base:
                out.append(self.words[i - self.word_base])
            elif i >= self.extra_base and i - self.extra_base < len(self.extra):
                out.append(self.extra[i - self.extra_base])
        return " ".join(out)

    def codes(self, codes: Sequence[int]) -> list[int]:
        """Image codes -> ids."""
        return [self.code_base + int(c) for c in codes]
