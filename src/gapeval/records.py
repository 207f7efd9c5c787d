"""Every record that crosses a stage boundary or reaches disk, documented field by field.

The stages (suite -> plan -> executor -> committer -> run store -> judges -> scoring -> reports) talk
only through these types, so each stage can live in another process or on another host:

- :class:`RunSpec` says what a run is; a resume must match it exactly (the model's identity included).
- :class:`RunManifest` is ``manifest.json``: the spec plus provenance, versioned by ``schema_version``.
- :class:`WorkUnit` is one request to a model, naming its images by content hash, never by path.
- :class:`OutputRecord` is what a model produced for one (item, direction, sample), or why not.
- :class:`VerdictRecord` is one judge's verdict on one output, keyed by (output key, judge id, rubric hash).
- :class:`RunRecords` is everything scoring needs from one run, read at the edge so scoring stays pure.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gapeval.items import Category, Direction

#: The run-directory format this gapeval writes. Version 1 runs are migrated on open (see the store).
SCHEMA_VERSION = 2
_SECRET_WORDS = ("key", "token", "secret", "password", "auth")


def now() -> str:
    """UTC timestamp, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def redact(options: dict[str, str]) -> dict[str, str]:
    """Options safe to write down: values of secret-looking keys are replaced."""
    return {
        k: ("<redacted>" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in options.items()
    }


class OutputStatus(StrEnum):
    """Where one (item, direction, sample) stands.

    ``pending``: planned, not produced yet. ``done``: an answer or an image exists. ``failed``: the model
    raised or returned nothing usable (retried on the next run of the same spec). ``unsupported``: the
    model lacks the capability (e.g. editing); never counted as wrong unless the user asks for it.
    """

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


class VerdictStatus(StrEnum):
    """A judge's answer: a decision, a failure to decide (retryable), or an abstention (not its case)."""

    OK = "ok"
    FAILED = "failed"
    ABSTAIN = "abstain"


class RunSpec(BaseModel):
    """What defines a run; a resume must match every field.

    Attributes:
        suite_name: The suite's name (``shapes-v1``, ``gapeval``, ``jsonl:NAME``...).
        suite_version: The suite definition's version string.
        suite_hash: SHA-256 over the items' content hashes, in order.
        n_items: Items in the suite.
        model: The model spec as given (``toy``, ``replay:NAME``, ``py:FILE.py:Class``...).
        model_options: Adapter options, with secret-looking values redacted.
        model_identity: What identifies the model's weights cheaply, told by the adapter before it
            loads them (a checkpoint's SHA-256, a hub revision, a file's size and time). A retrained
            checkpoint at the same path is another model, and a resume refuses it.
        seed: The run seed; every request's seed derives from it, the item, the direction and the sample.
        samples_und: Answers per item.
        samples_gen: Images per item.

    """

    model_config = ConfigDict(frozen=True)

    suite_name: str
    suite_version: str
    suite_hash: str
    n_items: int
    model: str
    model_options: dict[str, str] = Field(default_factory=dict)
    model_identity: dict[str, JsonValue] = Field(default_factory=dict)
    seed: int = 0
    samples_und: int = 1
    samples_gen: int = 1

    def spec_hash(self) -> str:
        """Hash of the spec."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def first_difference(self, other: RunSpec) -> str | None:
        """The first field whose value differs from ``other``'s, or None when they are equal."""
        return next((k for k in RunSpec.model_fields if getattr(self, k) != getattr(other, k)), None)


class JudgeSpec(BaseModel):
    """A judge used on a run.

    Attributes:
        judge_id: Identity of the judge and every setting that changes its verdicts (model, endpoint,
            protocol, token budget); verdicts are cached under it.
        spec: The spec it was built from, as given (``openai:gpt-5-mini``, ``scene``...).
        protocol: The judging protocol's name (``exact``, ``default``, ``paper``, or its settings).
        rubric_hash: Hash over the rubrics in force at its last judging (one per rubric in ``rubrics``).
        rubrics: Rubric id -> hash of that rubric's text, as in force at its last judging.

    """

    judge_id: str
    spec: str
    protocol: str = ""
    rubric_hash: str
    rubrics: dict[str, str] = Field(default_factory=dict)


class RunManifest(BaseModel):
    """``manifest.json``: what was run, by what, where, and when.

    Attributes:
        schema_version: Format version of the run directory (:data:`SCHEMA_VERSION`).
        run_id: Random id, also stored inside the database.
        spec: The run's :class:`RunSpec`.
        label: Display name in tables (default: the model spec); two checkpoints of one adapter differ.
        model_description: What the adapter says about itself once loaded (family, parameters, ...).
        judges: Every judge ever used on the run, first use first.
        judge_chain: The judge ids of the last judging, in precedence order; scoring uses it by default.
        suite_source: Where the suite was loaded from (a name or a path), to reload it for judging.
        executor: The executor that produced the outputs (``local``...).
        created_at, started_at, finished_at: UTC timestamps.
        versions: Python and package versions that shape results.
        git_revision: gapeval's git revision, when run from a checkout.
        platform: The operating system and machine.

    """

    schema_version: int = SCHEMA_VERSION
    run_id: str
    spec: RunSpec
    label: str = ""
    model_description: dict[str, Any] = Field(default_factory=dict)
    judges: list[JudgeSpec] = Field(default_factory=list)
    judge_chain: list[str] = Field(default_factory=list)
    suite_source: str = ""
    executor: str = "local"
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    git_revision: str | None = None
    platform: str = ""

    @property
    def display_name(self) -> str:
        """The name shown in tables: the label, else the model spec."""
        return self.label or self.spec.model


class WorkUnit(BaseModel):
    """One request to a model, self-contained so it can travel to another process or host.

    Attributes:
        item_id: The item asked.
        direction: ``und`` (image + text -> text) or ``gen`` (text [+ image] -> image).
        sample: Sample index within the item and direction.
        seed: The request's own seed; its output must not depend on what else is in its batch.
        prompt: The prompt text.
        images: Understanding input images, by SHA-256 of their bytes.
        input_image: The image to edit (generation only), by SHA-256; None draws from text alone.

    """

    model_config = ConfigDict(frozen=True)

    item_id: str
    direction: Direction
    sample: int
    seed: int
    prompt: str
    images: tuple[str, ...] = ()
    input_image: str | None = None

    @property
    def key(self) -> tuple[str, Direction, int]:
        """(item, direction, sample): the output it fills."""
        return (self.item_id, self.direction, self.sample)

    @property
    def is_edit(self) -> bool:
        """Whether this is an edit of a given image."""
        return self.input_image is not None


class OutputRecord(BaseModel):
    """One model output (or the reason there is none).

    Attributes:
        item_id, direction, sample: Which output this is.
        status: See :class:`OutputStatus`.
        seed: The request's seed.
        text: The answer (understanding).
        image_sha: SHA-256 of the stored PNG (generation); the image lives in ``images/``.
        error: Why there is no output (failed or unsupported).
        meta: Anything else the adapter returned (tokens, codes, timings).
        attempts: How many times this output was written.
        wall_s: Seconds the model call that produced it took, divided over the requests it served.

    """

    item_id: str
    direction: Direction
    sample: int
    status: OutputStatus
    seed: int
    text: str | None = None
    image_sha: str | None = None
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    wall_s: float | None = None

    @property
    def output_key(self) -> str | None:
        """Content identity of the output for verdict caching; None when there is no output.

        The item is part of it: the same text answering another question gets another verdict.
        """
        if self.status is not OutputStatus.DONE:
            return None
        content = self.text if self.direction is Direction.UND else self.image_sha
        return hashlib.sha256(f"{self.item_id}\0{self.direction}\0{content}".encode()).hexdigest()


class VerdictRecord(BaseModel):
    """One judge's verdict on one output.

    Attributes:
        output_key: :attr:`OutputRecord.output_key` of the output judged.
        judge_id: See :class:`JudgeSpec`.
        rubric_hash: Hash of the one rubric (and protocol) that governed this verdict.
        item_id, direction, sample: The output first judged under this key (identical outputs share it).
        status: See :class:`VerdictStatus`.
        passed: The decision (None unless ``status`` is ok).
        score: The decision as a number in [0, 1] (a share when several judge calls are averaged).
        reason: The judge's reason, or why it failed or abstained.
        raw: The judge's raw reply (every turn and sample), for audits.
        meta: Anything else (rubric id, per-sample verdicts, agreement, a fallback rubric).

    """

    output_key: str
    judge_id: str
    rubric_hash: str
    item_id: str
    direction: Direction
    sample: int
    status: VerdictStatus
    passed: bool | None = None
    score: float | None = None
    reason: str = ""
    raw: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)


def failure_reason(error: str | None) -> str:
    """A failed output's reason as one short line (its error's first line)."""
    return ((error or "").splitlines() or ["no reason given"])[0][:300]


class RunRecords(BaseModel):
    """Everything scoring reads from one run: read once at the edge, so scores are pure functions.

    Attributes:
        path: The run directory.
        manifest: The run's manifest.
        items: Item id -> (category, subcategory).
        outputs: Every output record.
        verdicts: Every verdict record.
        in_force: Judge id -> {item id and direction joined by a NUL: rubric hash} in force at that
            judge's last judging.

    """

    path: str
    manifest: RunManifest
    items: dict[str, tuple[Category, str]]
    outputs: list[OutputRecord]
    verdicts: list[VerdictRecord]
    in_force: dict[str, dict[str, str]] = Field(default_factory=dict)
