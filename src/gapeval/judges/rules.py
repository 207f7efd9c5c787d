"""Exact rules for what rules can decide; everything else is left to the next judge in the chain.

Text answers:
- multiple choice (a reference option letter): the model's final explicit option must match;
- counting targets: every target object's stated count must match;
- numeric references: the final answer's last number must equal the reference;
- short references (up to five words): normalised equality or containment as whole words.
Images: an edit that returns its input unchanged fails, and so does an output that copies the
reference image. Anything else abstains.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np
from PIL import Image

from gapeval.images import open_rgb
from gapeval.items import Direction, Item
from gapeval.judges.base import Decision, ExactJudge, JudgeTask

RULES_VERSION = "rules-v1"
#: Number words the rules read as numbers (answers may spell counts out).
WORD_NUMBERS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(WORD_NUMBERS) + r")"
_ANSWER_MARK = re.compile(
    r"(?:final\s+answer|answer|option|choice)\s*(?:is|:|=)?\s*[:\-]?\s*\**\(?([A-J])\)?(?![A-Za-z])", re.I
)
_BOXED = re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}")
_BARE = re.compile(r"^\W*\(?([A-J])\)?[.):]?\W*$")


def final_answer(text: str) -> str:
    """The part of an answer that states the result: after the last 'answer' marker, else the last line."""
    marks = list(re.finditer(r"(?:final\s+answer|answer)\s*(?:is|:)", text, re.I))
    if marks:
        return text[marks[-1].end() :].strip()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def extract_option(text: str) -> str | None:
    """The final explicit option letter in an answer, or None when it states none."""
    found = [m.group(1) for m in _BOXED.finditer(text)] + [m.group(1) for m in _ANSWER_MARK.finditer(text)]
    if found:
        return found[-1].upper()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        bare = _BARE.match(lines[-1])
        if bare:
            return bare.group(1).upper()
    return None


def _to_number(token: str) -> float:
    return float(WORD_NUMBERS[token.lower()]) if token.lower() in WORD_NUMBERS else float(token)


def stated_count(text: str, name: str) -> int | None:
    """The last count the text states for object ``name`` ("3 cats", "cats: 3", "three red cats")."""
    noun = re.escape(name.lower().rstrip("s"))
    patterns = [
        rf"\b{_NUM}\s+(?:[a-z-]+\s+){{0,2}}?{noun}(?:s|es)?\b",
        rf"\b{noun}(?:s|es)?\s*(?:[:=]|is|are|count(?:s)?\s*(?:is|:)?)\s*{_NUM}\b",
    ]
    hits: list[tuple[int, float]] = []
    low = text.lower()
    for pat in patterns:
        hits += [(m.start(), _to_number(m.group(1))) for m in re.finditer(pat, low)]
    if not hits:
        return None
    value = max(hits)[1]
    return int(value) if value.is_integer() else None


def normalise(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in {"a", "an", "the"})


def judge_text(item: Item, text: str) -> Decision:
    """Decide an understanding answer when a rule applies."""
    refs = item.refs
    if refs.choice:
        option = extract_option(text)
        if option is None:
            return Decision.decide(False, "no explicit option in the answer", option=None)
        return Decision.decide(
            option == refs.choice.upper(),
            f"final option {option}, expected {refs.choice.upper()}",
            option=option,
        )
    if refs.counts:
        stated = {name: stated_count(text, name) for name in refs.counts}
        wrong = {k: v for k, v in stated.items() if v != refs.counts[k]}
        return Decision.decide(
            not wrong,
            "all counts right"
            if not wrong
            else "; ".join(f"{k}: said {v}, expected {refs.counts[k]}" for k, v in wrong.items()),
            stated=stated,
        )
    ref = (refs.text or "").strip()
    if not ref:
        return Decision.abstain("no reference a rule can use")
    if "\n" in ref:
        return Decision.abstain("multi-part reference: needs a model judge")
    answer = final_answer(text)
    if re.fullmatch(r"-?\d+(?:\.\d+)?", ref):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", answer)
        if not numbers:
            return Decision.decide(False, "no number in the final answer")
        got = float(numbers[-1])
        return Decision.decide(
            abs(got - float(ref)) <= 1e-9 * max(1.0, abs(float(ref))),
            f"final number {numbers[-1]}, expected {ref}",
        )
    nref, nans = normalise(ref), normalise(answer)
    if len(nref.split()) > 5:
        return Decision.abstain("free-text reference: needs a model judge")
    ok = nans == nref or f" {nref} " in f" {normalise(text)} "
    return Decision.decide(ok, "matches the reference" if ok else f"does not state {ref!r}")


def _same_image(a: Image.Image, path: str, tolerance: float = 2.0) -> bool:
    with Image.open(path) as other:
        b = other.convert("RGB")
    if a.size != b.size:
        b = b.resize(a.size)
    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return float(diff.mean()) <= tolerance


def judge_image(item: Item, image_path: str) -> Decision:
    """Fail images that return the input unchanged or copy the reference; abstain otherwise."""
    img = open_rgb(image_path)
    if item.gen.input_image is not None and _same_image(img, item.gen.input_image.path):
        return Decision.decide(False, "unchanged: the edit returned its input", unchanged=True)
    if item.refs.image is not None and _same_image(img, item.refs.image.path):
        return Decision.decide(False, "copies the reference image", copied_reference=True)
    return Decision.abstain("no exact rule for this image")


class RulesJudge(ExactJudge):
    """Rule-based judge (deterministic, free, exact where it decides)."""

    judge_id = "rules"
    version = RULES_VERSION

    def judge_batch(self, tasks: Sequence[JudgeTask]) -> list[Decision]:
        """Decide each task by rule, or abstain."""
        out: list[Decision] = []
        for task in tasks:
            if task.direction is Direction.UND:
                out.append(judge_text(task.item, task.output.text or ""))
            elif task.image_path is None:
                out.append(Decision.fail("image missing from the store"))
            else:
                out.append(judge_image(task.item, str(task.image_path)))
        return out
