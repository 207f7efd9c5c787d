"""Rubrics as data: one YAML file per (category, subcategory, direction), hashed into every verdict key.

A rubric names what it applies to (source category strings or GapEval categories, subcategories, the
direction), which images to attach (``question``, ``reference``, ``output``), a system prompt and a
Jinja template over the item and the output. Verdicts are JSON ``{"reason": ..., "verdict": ...}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined

from gapeval.errors import GapevalError
from gapeval.items import Category, Direction, Item
from gapeval.judges.base import text_hash

#: GapEval category -> the source category string whose rubrics serve items that carry no source string.
_FALLBACK_SOURCE = {
    Category.NUMERICAL_PERCEPTION: "counting",
    Category.INSTRUCTION_FOLLOWING: "rule_based",
    Category.WORLD_KNOWLEDGE: "multi hop",
    Category.REASONING: "physics",
}


@dataclass(frozen=True)
class Rubric:
    """One rubric file."""

    id: str
    direction: str
    categories: tuple[str, ...]
    subcategories: tuple[str, ...]
    images: tuple[str, ...]
    system: str
    template: str
    text: str

    @property
    def hash(self) -> str:
        """Hash of the rubric's full text."""
        return text_hash(self.text)

    def render(self, **variables: Any) -> str:
        """The user message for one output."""
        return str(_compiled(self.template).render(**variables))


@lru_cache(maxsize=64)
def _compiled(template: str) -> Any:
    # Compiling a template costs about a millisecond: once per rubric, not once per request.
    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    return env.from_string(template)


def _load(name: str, text: str) -> Rubric:
    try:
        data = yaml.safe_load(text)
        applies = data["applies_to"]
        return Rubric(
            id=str(data["id"]),
            direction=str(applies["direction"]),
            categories=tuple(str(c).lower() for c in applies["categories"]),
            subcategories=tuple(str(s).lower() for s in applies.get("subcategories") or ()),
            images=tuple(data.get("images") or ()),
            system=str(data["system"]),
            template=str(data["template"]),
            text=text,
        )
    except (KeyError, TypeError, yaml.YAMLError) as exc:
        raise GapevalError(f"invalid rubric ({exc})", file=name) from exc


@lru_cache(maxsize=1)
def all_rubrics() -> tuple[Rubric, ...]:
    """Every rubric shipped in ``gapeval/judges/rubrics``."""
    folder = resources.files("gapeval.judges") / "rubrics"
    return tuple(
        _load(f.name, f.read_text(encoding="utf-8"))
        for f in sorted(folder.iterdir(), key=lambda p: p.name)
        if f.name.endswith(".yaml")
    )


def rubric_for(item: Item, direction: Direction | str) -> Rubric:
    """The rubric for this item and direction (most specific subcategory match first).

    Raises:
        GapevalError: No rubric covers the item's category.

    """
    d = str(direction)
    sub = item.subcategory.lower()
    if item.refs.choice and item.category is Category.REASONING and sub not in ("mmlu/mmmu", "puzzle"):
        sub = "mmlu/mmmu"  # our own multiple-choice items use the multiple-choice rubrics
    # The source string first (the authors' data), then the GapEval category's stand-in (our own suites).
    for source in ((item.source_category or "").lower(), _FALLBACK_SOURCE[item.category]):
        candidates = [r for r in all_rubrics() if r.direction == d and source in r.categories]
        for r in candidates:
            if sub and sub in r.subcategories:
                return r
        for r in candidates:
            if not r.subcategories:
                return r
    raise GapevalError(
        f"no {d} rubric for category {item.source_category!r} / {item.subcategory!r}", field="category"
    )


def balance_rubric() -> Rubric:
    """The cross-modal consistency check for multiple-choice reasoning."""
    return next(r for r in all_rubrics() if r.direction == "balance")


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def parse_verdict(reply: str | None) -> tuple[bool | None, str, str | None]:
    """Read a judge reply: ``(passed, reason, label)``; ``passed`` is None when the reply is unusable.

    Accepts a bare JSON object, fenced JSON, JSON with prose around it, and the legacy keys ``score``
    and ``judge_result`` (1/0, true/false, yes/no, pass/fail). ``label`` keeps a verdict word such as
    ``unchanged``, which fails.
    """
    if not reply:
        return None, "empty reply", None
    candidates = [m.group(1) for m in _FENCE.finditer(reply)]
    start, end = reply.find("{"), reply.rfind("}")
    if start != -1 and end > start:
        candidates.append(reply[start : end + 1])
    candidates.insert(0, reply.strip())
    for cand in candidates:
        try:
            data = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        reason = str(data.get("reason", ""))
        for key in ("verdict", "score", "judge_result", "judeg_result"):
            if key in data:
                value = data[key]
                if isinstance(value, bool):
                    return value, reason, None
                if isinstance(value, (int, float)) and value in (0, 1):
                    return bool(value), reason, None
                word = str(value).strip().lower()
                if word in {"pass", "passed", "correct", "yes", "true", "1"}:
                    return True, reason, word
                if word in {"fail", "failed", "incorrect", "no", "false", "0", "unchanged"}:
                    return False, reason, word
        return None, "reply JSON has no usable verdict", None
    return None, "reply is not JSON", None
