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
from typing import Any, Literal

import yaml
from jinja2 import Environment, StrictUndefined, TemplateSyntaxError, meta
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapeval.errors import GapevalError
from gapeval.items import Category, Direction, Item
from gapeval.judges.base import text_hash

#: The variables a rubric template may use (anything else is an error when the rubric is loaded).
TEMPLATE_VARIABLES = frozenset(
    {
        "prompt",
        "und_prompt",
        "gen_prompt",
        "reference",
        "choice",
        "counts",
        "output_text",
        "model_text",
        "has_reference_image",
    }
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppliesTo(_Closed):
    """Which items a rubric governs.

    Attributes:
        categories: Source category strings (``counting``, ``multi hop``...; case-insensitive).
        subcategories: Subcategories it is specific to (empty: any subcategory of its categories).
        direction: ``und``, ``gen``, or ``balance`` (the cross-modal consistency check).

    """

    categories: list[str] = Field(min_length=1)
    subcategories: list[str] = Field(default_factory=list)
    direction: Literal["und", "gen", "balance"]


class RubricFile(_Closed):
    """The closed schema of a rubric YAML file: an unknown key or a missing field is an error.

    Attributes:
        id: Unique rubric id (recorded with every verdict).
        version: The rubric's version number.
        applies_to: See :class:`AppliesTo`.
        fallback_for: GapEval categories whose items no other rubric names (our own suites, an unseen
            subcategory) fall back to this one; such verdicts are marked ``rubric_fallback``.
        images: Images to attach, in order: ``question``, ``reference``, ``output``.
        system: The system prompt.
        template: Jinja template of the user message (variables: :data:`TEMPLATE_VARIABLES`).

    """

    id: str = Field(min_length=1)
    version: int
    applies_to: AppliesTo
    fallback_for: list[Category] = Field(default_factory=list)
    images: list[Literal["question", "reference", "output"]] = Field(default_factory=list)
    system: str
    template: str


@dataclass(frozen=True)
class Rubric:
    """One rubric file, validated."""

    id: str
    direction: str
    categories: tuple[str, ...]
    subcategories: tuple[str, ...]
    images: tuple[str, ...]
    system: str
    template: str
    text: str
    fallback_for: tuple[Category, ...] = ()

    @property
    def hash(self) -> str:
        """Hash of the rubric's full text."""
        return text_hash(self.text)

    def render(self, **variables: Any) -> str:
        """The user message for one output."""
        return str(_compiled(self.template).render(**variables))


_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=64)
def _compiled(template: str) -> Any:
    # Compiling a template costs about a millisecond: once per rubric, not once per request.
    return _ENV.from_string(template)


def load_rubric(name: str, text: str) -> Rubric:
    """Validate one rubric file's text against :class:`RubricFile`.

    Raises:
        GapevalError: Naming the file and the field at fault.

    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GapevalError(f"not valid YAML ({exc.__class__.__name__})", file=name) from exc
    if not isinstance(data, dict):
        raise GapevalError("a rubric is a YAML mapping", file=name)
    try:
        spec = RubricFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GapevalError(str(first["msg"]).lower(), file=name, field=where) from exc
    try:
        unknown = meta.find_undeclared_variables(_ENV.parse(spec.template)) - TEMPLATE_VARIABLES
    except TemplateSyntaxError as exc:
        raise GapevalError(f"template syntax error: {exc.message}", file=name, field="template") from exc
    if unknown:
        raise GapevalError(
            f"unknown template variable(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(TEMPLATE_VARIABLES))}",
            file=name,
            field="template",
        )
    return Rubric(
        id=spec.id,
        direction=spec.applies_to.direction,
        categories=tuple(c.lower() for c in spec.applies_to.categories),
        subcategories=tuple(x.lower() for x in spec.applies_to.subcategories),
        images=tuple(spec.images),
        system=spec.system,
        template=spec.template,
        text=text,
        fallback_for=tuple(spec.fallback_for),
    )


@lru_cache(maxsize=1)
def all_rubrics() -> tuple[Rubric, ...]:
    """Every rubric shipped in ``gapeval/judges/rubrics`` (ids unique)."""
    folder = resources.files("gapeval.judges") / "rubrics"
    found = tuple(
        load_rubric(f"rubrics/{f.name}", f.read_text(encoding="utf-8"))
        for f in sorted(folder.iterdir(), key=lambda p: p.name)
        if f.name.endswith(".yaml")
    )
    ids = [r.id for r in found]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise GapevalError(f"two rubrics share the id {dup!r}", file="rubrics", field="id")
    return found


def match_rubric(item: Item, direction: Direction | str) -> tuple[Rubric, bool]:
    """The rubric for this item and direction, and whether it is a declared fallback.

    The item's source category string is matched first (its subcategory's rubric, else the category's
    general one); failing that, the rubric that declares ``fallback_for`` the item's GapEval category.

    Raises:
        GapevalError: No rubric covers the item (never a silent guess).

    """
    d = str(direction)
    sub = item.subcategory.lower()
    if item.refs.choice and item.category is Category.REASONING and sub not in ("mmlu/mmmu", "puzzle"):
        sub = "mmlu/mmmu"  # our own multiple-choice items use the multiple-choice rubrics
    source = (item.source_category or "").lower()
    candidates = [r for r in all_rubrics() if r.direction == d and source in r.categories]
    for r in candidates:
        if sub and sub in r.subcategories:
            return r, False
    for r in candidates:
        if not r.subcategories:
            return r, False
    for r in all_rubrics():
        if r.direction == d and item.category in r.fallback_for:
            return r, True
    raise GapevalError(
        f"no {d} rubric for category {item.source_category!r} / {item.subcategory!r}, and none declares "
        f"fallback_for {item.category.value!r}",
        field="category",
    )


def rubric_for(item: Item, direction: Direction | str) -> Rubric:
    """The rubric for this item and direction (see :func:`match_rubric`)."""
    return match_rubric(item, direction)[0]


def balance_rubric() -> Rubric:
    """The cross-modal consistency check for multiple-choice reasoning."""
    return next(r for r in all_rubrics() if r.direction == "balance")


_VERDICT_KEYS = ("verdict", "score", "judge_result", "judeg_result")
_VERDICT_WORD = re.compile(
    r"\b(pass(?:es|ed|ing)?|fail(?:s|ed|ing|ure)?|correct|incorrect|wrong|unchanged)\b", re.I
)
_FENCE_MARKS = re.compile(r"```(?:json)?", re.I)
_DECODER = json.JSONDecoder()


def _json_objects(reply: str) -> list[tuple[int, int, Any]]:
    """Every top-level JSON value that starts with ``{`` in the reply, with its span."""
    found: list[tuple[int, int, Any]] = []
    at = reply.find("{")
    while at != -1:
        try:
            value, end = _DECODER.raw_decode(reply, at)
        except (json.JSONDecodeError, RecursionError):
            at = reply.find("{", at + 1)
            continue
        found.append((at, end, value))
        at = reply.find("{", end)
    return found


def _reading(value: Any) -> tuple[bool | None, str | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value), None
    word = str(value).strip().lower()
    if word in {"pass", "passed", "correct", "yes", "true", "1"}:
        return True, word
    if word in {"fail", "failed", "incorrect", "no", "false", "0", "unchanged"}:
        return False, word
    return None, None


def parse_verdict(reply: str | None) -> tuple[bool | None, str, str | None]:
    """Read a judge reply strictly: ``(passed, reason, label)``; ``passed`` is None when unusable.

    The reply must hold exactly one JSON object with a verdict (``verdict``, or the legacy ``score`` /
    ``judge_result``: pass/fail, 1/0, true/false, yes/no), bare or fenced, with prose around it allowed
    only if that prose states no verdict of its own. Two verdicts, a verdict word outside the object
    (prose saying FAIL around a quoted pass, which a model can plant in its own answer), or a value that
    is neither pass nor fail make the reply unusable: it is retried, and after the cap it is a judge
    failure, never a guess. ``label`` keeps a verdict word such as ``unchanged``, which fails.
    """
    if not reply or not reply.strip():
        return None, "empty reply", None
    objects = _json_objects(reply)
    verdicts = [
        (start, end, data, key)
        for start, end, data in objects
        if isinstance(data, dict)
        for key in [next((k for k in _VERDICT_KEYS if k in data), None)]
        if key is not None
    ]
    if not verdicts:
        return None, ("reply JSON has no usable verdict" if objects else "reply is not JSON"), None
    if len(verdicts) > 1:
        return None, f"{len(verdicts)} verdicts in one reply (ambiguous)", None
    start, end, data, key = verdicts[0]
    outside = _FENCE_MARKS.sub(" ", reply[:start] + " " + reply[end:])
    if _VERDICT_WORD.search(outside):
        return None, "prose around the verdict states one of its own (ambiguous)", None
    passed, label = _reading(data[key])
    if passed is None:
        return None, f"verdict {str(data[key])[:40]!r} is neither pass nor fail", None
    return passed, str(data.get("reason", "")), label
