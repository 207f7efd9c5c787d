"""Rubrics as data: one YAML file per (category, subcategory, direction), hashed into every verdict key.

A rubric names what it applies to (source category strings or GapEval categories, subcategories, the
direction), which images to attach (``question``, ``reference``, ``output``), a system prompt and a
Jinja template over the item and the output. Verdicts are JSON ``{"reason": ..., "verdict": ...}``.

A rubric directory of one's own (``--rubrics DIR``) replaces the built-in set; its files may also say
how a foreign judge renders, calls and reads (``rendering``, ``variables``, ``request``, ``follow_up``,
``parsing``, ``text_gate``): that is how ``gapeval rubrics import-authors`` reproduces the authors' judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
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
        "output_raw",
        "model_raw",
        "reference_text",
        "problem_text",
        "images",
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


ImageName = Literal["question", "reference", "output"]


class ImageSlot(_Closed):
    """One attached image found the way another harness finds it (the first lookup that finds a file).

    Attributes:
        name: The slot's name (``images.NAME`` in variables, and in ``requires``).
        lookup: Tried in order: ``folder:SUB`` (the first ``.png``/``.jpg``/``.jpeg`` by name in the
            item folder's subfolder ``SUB``), ``record:KEY`` (the path the item's source record gives
            under ``KEY``, relative to its folder, if that file exists), ``question``, ``reference``
            or ``output`` (the item's own images and the model's output).
        otherwise: For items that have no source folder (our generated and JSONL suites): which of the
            item's own images stands in (``question``, ``reference``, ``output``), or none.

    """

    name: str = Field(min_length=1)
    lookup: list[str] = Field(min_length=1)
    otherwise: ImageName | None = None


class FollowUp(_Closed):
    """The second turn of a two-turn protocol.

    Attributes:
        text: What the user asks next.
        carry: Fields of the first reply's assistant message sent back with it (besides ``content``),
            present even when the reply lacked them (then null), as the authors' script sends them.

    """

    text: str = "Are you sure? Think carefully."
    carry: list[str] = Field(default_factory=list)


class RubricFile(_Closed):
    """The closed schema of a rubric YAML file: an unknown key or a missing field is an error.

    Attributes:
        id: Unique rubric id (recorded with every verdict).
        version: The rubric's version number.
        applies_to: See :class:`AppliesTo`.
        fallback_for: GapEval categories whose items no other rubric names (our own suites, an unseen
            subcategory) fall back to this one; such verdicts are marked ``rubric_fallback``.
        images: Images to attach, in order: ``question``, ``reference``, ``output``, or an
            :class:`ImageSlot` (found as another harness finds it). Missing images are left out.
        system: The system prompt.
        template: Jinja template of the user message (variables: :data:`TEMPLATE_VARIABLES`, or the
            names ``variables`` defines).
        variables: The template's own variable names, each a Jinja expression over
            :data:`TEMPLATE_VARIABLES` (a foreign template keeps its names; only these are passed).
        requires: Image slots or fields (``problem_text``, ``reference_text``, ``gen_prompt``) without
            which the output is not judged (abstained, as the other harness refuses it).
        rendering: ``gapeval`` (the model's words quoted, images re-encoded under the size cap) or
            ``authors`` (the template rendered as plain Jinja renders it, with no trailing newline; images
            sent as their files' bytes, typed by suffix; a user message with no image is a string).
        parsing: ``strict`` (:func:`parse_verdict`: an unusable reply is retried) or ``authors``
            (:func:`parse_authors_verdict`: the outermost braces, ``score``/``judge_result``/
            ``judeg_result``; a reply without a positive score fails, none is retried).
        request: Extra fields of every chat request (e.g. ``max_tokens``, ``reasoning``).
        follow_up: The second turn, when the protocol asks for two (see :class:`FollowUp`).
        text_gate: ``balance``: judge the item's text answer first (same judge, same pass); when it
            was judged wrong, judge the image against the ``balance`` rubric instead (the authors'
            multiple-choice flow). Generation rubrics only.

    """

    id: str = Field(min_length=1)
    version: int
    applies_to: AppliesTo
    fallback_for: list[Category] = Field(default_factory=list)
    images: list[ImageName | ImageSlot] = Field(default_factory=list)
    system: str
    template: str
    variables: dict[str, str] = Field(default_factory=dict)
    requires: list[str] = Field(default_factory=list)
    rendering: Literal["gapeval", "authors"] = "gapeval"
    parsing: Literal["strict", "authors"] = "strict"
    request: dict[str, Any] = Field(default_factory=dict)
    follow_up: FollowUp | None = None
    text_gate: Literal["balance"] | None = None


@dataclass(frozen=True)
class Rubric:
    """One rubric file, validated."""

    id: str
    direction: str
    categories: tuple[str, ...]
    subcategories: tuple[str, ...]
    images: tuple[str | ImageSlot, ...]
    system: str
    template: str
    text: str
    fallback_for: tuple[Category, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    requires: tuple[str, ...] = ()
    rendering: str = "gapeval"
    parsing: str = "strict"
    request: tuple[tuple[str, Any], ...] = ()
    follow_up: FollowUp | None = None
    text_gate: str | None = None

    @property
    def hash(self) -> str:
        """Hash of the rubric's full text."""
        return text_hash(self.text)

    def render(self, **variables: Any) -> str:
        """The user message for one output.

        With ``variables`` declared, the template sees only those names, each evaluated over ours.
        """
        env = _PLAIN if self.rendering == "authors" else _ENV
        if self.variables:
            variables = {k: _expression(expr)(**variables) for k, expr in self.variables}
        return str(_compiled(self.template, env is _PLAIN).render(**variables))

    def extra_body(self) -> dict[str, Any]:
        """The rubric's extra request fields (a fresh copy per request)."""
        copied: dict[str, Any] = json.loads(json.dumps(dict(self.request)))
        return copied


_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# Jinja's defaults, as a harness that calls ``Environment(undefined=StrictUndefined)`` renders (the
# trailing newline of a template is dropped).
_PLAIN = Environment(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=128)
def _compiled(template: str, plain: bool = False) -> Any:
    # Compiling a template costs about a millisecond: once per rubric, not once per request.
    return (_PLAIN if plain else _ENV).from_string(template)


@lru_cache(maxsize=256)
def _expression(expr: str) -> Any:
    return _ENV.compile_expression(expr, undefined_to_none=False)


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
    known = frozenset(spec.variables) if spec.variables else TEMPLATE_VARIABLES
    try:
        unknown = meta.find_undeclared_variables(_ENV.parse(spec.template)) - known
    except TemplateSyntaxError as exc:
        raise GapevalError(f"template syntax error: {exc.message}", file=name, field="template") from exc
    if unknown:
        what = "not among the rubric's variables" if spec.variables else "unknown template variable(s)"
        raise GapevalError(
            f"{what}: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}",
            file=name,
            field="template",
        )
    for var, expr in spec.variables.items():
        try:
            names = meta.find_undeclared_variables(_ENV.parse("{{ " + expr + " }}"))
        except TemplateSyntaxError as exc:
            raise GapevalError(f"expression syntax error: {exc.message}", file=name,
                               field=f"variables.{var}") from exc  # fmt: skip
        if names - TEMPLATE_VARIABLES:
            raise GapevalError(
                f"unknown name(s) {', '.join(sorted(names - TEMPLATE_VARIABLES))}; known: "
                f"{', '.join(sorted(TEMPLATE_VARIABLES))}",
                file=name,
                field=f"variables.{var}",
            )
    slots = [s.name for s in spec.images if isinstance(s, ImageSlot)]
    for i, slot in enumerate(s for s in spec.images if isinstance(s, ImageSlot)):
        bad = next((x for x in slot.lookup if not _LOOKUP.fullmatch(x)), None)
        if bad is not None:
            raise GapevalError(
                f"unknown lookup {bad!r}; folder:SUB, record:KEY, question, reference or output",
                file=name,
                field=f"images.{i}.lookup",
            )
    fields = {"problem_text", "reference_text", "gen_prompt"}
    missing = [r for r in spec.requires if r not in fields and r not in slots]
    if missing:
        raise GapevalError(
            f"{missing[0]!r} is neither an image slot of this rubric nor one of {', '.join(sorted(fields))}",
            file=name,
            field="requires",
        )
    if spec.text_gate and spec.applies_to.direction != "gen":
        raise GapevalError("a text gate belongs to a generation rubric", file=name, field="text_gate")
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
        variables=tuple(spec.variables.items()),
        requires=tuple(spec.requires),
        rendering=spec.rendering,
        parsing=spec.parsing,
        request=tuple(spec.request.items()),
        follow_up=spec.follow_up,
        text_gate=spec.text_gate,
    )


_LOOKUP = re.compile(r"(folder|record):[\w./-]+|question|reference|output")


def _unique(found: tuple[Rubric, ...], where: str) -> tuple[Rubric, ...]:
    ids = [r.id for r in found]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise GapevalError(f"two rubrics share the id {dup!r}", file=where, field="id")
    return found


@lru_cache(maxsize=1)
def all_rubrics() -> tuple[Rubric, ...]:
    """Every rubric shipped in ``gapeval/judges/rubrics`` (ids unique)."""
    folder = resources.files("gapeval.judges") / "rubrics"
    found = tuple(
        load_rubric(f"rubrics/{f.name}", f.read_text(encoding="utf-8"))
        for f in sorted(folder.iterdir(), key=lambda p: p.name)
        if f.name.endswith(".yaml")
    )
    return _unique(found, "rubrics")


def load_rubric_dir(path: str | Path) -> tuple[Rubric, ...]:
    """Every ``*.yaml`` rubric in a directory of one's own (``--rubrics DIR``), validated.

    Raises:
        GapevalError: The directory is missing or empty, or a file fails (naming it and the field).

    """
    folder = Path(path)
    if not folder.is_dir():
        raise GapevalError("rubric directory does not exist", file=folder, field="rubrics")
    files = sorted(f for f in folder.iterdir() if f.suffix == ".yaml" and f.is_file())
    if not files:
        raise GapevalError("holds no *.yaml rubric", file=folder, field="rubrics")
    return _unique(tuple(load_rubric(str(f), f.read_text(encoding="utf-8")) for f in files), str(folder))


def match_rubric(
    item: Item, direction: Direction | str, rubrics: Sequence[Rubric] | None = None
) -> tuple[Rubric, bool]:
    """The rubric for this item and direction, and whether it is a declared fallback.

    The item's source category string is matched first (its subcategory's rubric, else the category's
    general one); failing that, the rubric that declares ``fallback_for`` the item's GapEval category.

    Args:
        item: The item.
        direction: ``und``, ``gen`` or ``balance``.
        rubrics: The rubric set (default: the built-in one).

    Raises:
        GapevalError: No rubric covers the item (never a silent guess).

    """
    pool = all_rubrics() if rubrics is None else rubrics
    d = str(direction)
    sub = item.subcategory.lower()
    if item.refs.choice and item.category is Category.REASONING and sub not in ("mmlu/mmmu", "puzzle"):
        sub = "mmlu/mmmu"  # our own multiple-choice items use the multiple-choice rubrics
    source = (item.source_category or "").lower()
    candidates = [r for r in pool if r.direction == d and source in r.categories]
    for r in candidates:
        if sub and sub in r.subcategories:
            return r, False
    for r in candidates:
        if not r.subcategories:
            return r, False
    for r in pool:
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


def parse_authors_verdict(reply: str | None) -> tuple[bool, str, str | None]:
    """Read a reply as the authors' script reads it: ``(passed, reason, label)``, never unusable.

    The whole reply as JSON, else the text from its first ``{`` to its last ``}``; the verdict is
    ``score``, else ``judge_result``, else the misspelt ``judeg_result``; it passes when it is true,
    1, or the string ``1``, ``true`` or ``yes``. Anything else (a reply that is not JSON included:
    label ``raw``) fails.
    """
    text = reply or ""
    parsed: Any = None
    try:
        parsed = json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start != -1 and end > start:
            try:
                parsed = json.loads(text[start : end + 1])
            except ValueError:
                parsed = None
    if not isinstance(parsed, dict):
        return False, "reply is not JSON (the authors' script counts it as a failure)", "raw"
    score = next((parsed[k] for k in ("score", "judge_result", "judeg_result") if parsed.get(k) is not None),
                 None)  # fmt: skip
    if isinstance(score, bool):
        passed = score
    elif isinstance(score, (int, float)):
        passed = score == 1
    else:
        passed = isinstance(score, str) and score.strip().lower() in {"1", "true", "yes"}
    label = None if score is not None else "raw"
    return passed, str(parsed.get("reason", parsed.get("explanation", ""))), label


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
