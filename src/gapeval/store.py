"""The run directory: the only place run state lives.

Layout::

    RUN/
      manifest.json   what was run: suite hash, model, seeds, judges, versions, git revision, times
      run.sqlite      outputs keyed by (item, direction, sample); verdicts keyed by
                      (output key, judge id, rubric hash); WAL mode, one transaction per write
      images/ab/abcd....png   generated images, stored once by content hash

Every write is its own transaction, so a process killed at any moment leaves only whole records; the
next run of the same spec skips what is done and redoes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gapeval.errors import GapevalError
from gapeval.images import sha256_bytes
from gapeval.items import Category, Direction, Item

SCHEMA_VERSION = 1
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
    """Where one (item, direction, sample) stands."""

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
    """What defines a run; a resume must match it exactly."""

    model_config = ConfigDict(frozen=True)

    suite_name: str
    suite_version: str
    suite_hash: str
    n_items: int
    model: str
    model_options: dict[str, str] = Field(default_factory=dict)
    seed: int = 0
    samples_und: int = 1
    samples_gen: int = 1

    def spec_hash(self) -> str:
        """Hash of the spec."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class JudgeSpec(BaseModel):
    """A judge used on this run."""

    judge_id: str
    rubric_hash: str
    spec: str


class RunManifest(BaseModel):
    """``manifest.json``."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    spec: RunSpec
    model_description: dict[str, Any] = Field(default_factory=dict)
    judges: list[JudgeSpec] = Field(default_factory=list)
    suite_source: str = ""
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    git_revision: str | None = None
    platform: str = ""


class OutputRecord(BaseModel):
    """One model output (or the reason there is none)."""

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
    """One judge's verdict on one output."""

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
  item_id TEXT NOT NULL, direction TEXT NOT NULL, sample INTEGER NOT NULL,
  status TEXT NOT NULL, seed INTEGER NOT NULL, text TEXT, image_sha TEXT, error TEXT,
  meta TEXT NOT NULL DEFAULT '{}', attempts INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
  PRIMARY KEY (item_id, direction, sample));
CREATE TABLE IF NOT EXISTS verdicts (
  output_key TEXT NOT NULL, judge_id TEXT NOT NULL, rubric_hash TEXT NOT NULL,
  item_id TEXT NOT NULL, direction TEXT NOT NULL, sample INTEGER NOT NULL,
  status TEXT NOT NULL, passed INTEGER, score REAL, reason TEXT NOT NULL, raw TEXT NOT NULL,
  meta TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
  PRIMARY KEY (output_key, judge_id, rubric_hash));
CREATE TABLE IF NOT EXISTS items (
  item_id TEXT PRIMARY KEY, category TEXT NOT NULL, subcategory TEXT NOT NULL, content_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (at TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
"""


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results."""
    out = {"python": sys.version.split()[0]}
    for name in ("gapeval", "numpy", "scipy", "pillow", "pydantic", "torch", "openai"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_revision() -> str | None:
    """The git revision of the gapeval source tree, when it is a checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--", str(here)],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return res.stdout.strip() + ("-dirty" if dirty else "")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RunStore:
    """A run directory opened for reading and writing.

    Use :meth:`create` for a new run, :meth:`open` for an existing one, or :meth:`open_or_create` to
    resume when the spec matches.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_path = path / "manifest.json"
        self.images_dir = path / "images"
        self._db = sqlite3.connect(path / "run.sqlite", timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes (kill -9) in WAL mode; only power loss can drop
        # the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | Path, spec: RunSpec, model_description: dict[str, Any] | None = None
    ) -> RunStore:
        """Make a new run directory (it must not hold a run already)."""
        root = Path(path)
        if (root / "manifest.json").exists():
            raise GapevalError("already holds a run; use it to resume or pick another --out", file=root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "images").mkdir(exist_ok=True)
        manifest = RunManifest(
            run_id=uuid.uuid4().hex,
            spec=spec,
            model_description=model_description or {},
            created_at=now(),
            versions=package_versions(),
            git_revision=git_revision(),
            platform=platform.platform(),
        )
        store = cls(root)
        store.write_manifest(manifest)
        return store

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        """Open an existing run directory."""
        root = Path(path)
        if not (root / "manifest.json").is_file() or not (root / "run.sqlite").is_file():
            raise GapevalError("not a run directory (manifest.json or run.sqlite missing)", file=root)
        store = cls(root)
        store.manifest()  # validates
        return store

    @classmethod
    def open_or_create(
        cls, path: str | Path, spec: RunSpec, model_description: dict[str, Any] | None = None
    ) -> tuple[RunStore, bool]:
        """Resume the run at ``path`` if its spec matches, else create it.

        Returns:
            The store and whether it resumed an existing run.

        Raises:
            GapevalError: ``path`` holds a run of a different spec (naming the first differing field).

        """
        root = Path(path)
        if not (root / "manifest.json").exists():
            return cls.create(root, spec, model_description), False
        store = cls.open(root)
        old = store.manifest().spec
        if old != spec:
            diff = next(k for k in RunSpec.model_fields if getattr(old, k) != getattr(spec, k))
            raise GapevalError(
                f"holds a run of a different spec ({diff}: {getattr(old, diff)!r} != "
                f"{getattr(spec, diff)!r}); pick another --out",
                file=root / "manifest.json",
                field=f"spec.{diff}",
            )
        return store, True

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manifest ----------------------------------------------------------------------------------
    def manifest(self) -> RunManifest:
        """Read ``manifest.json``."""
        try:
            return RunManifest.model_validate_json(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GapevalError(
                f"unreadable manifest ({exc.__class__.__name__})", file=self.manifest_path
            ) from exc

    def write_manifest(self, manifest: RunManifest) -> None:
        """Replace ``manifest.json`` atomically."""
        _write_atomic(self.manifest_path, manifest.model_dump_json(indent=2).encode())

    def update_manifest(self, **changes: Any) -> RunManifest:
        """Set top-level manifest fields."""
        manifest = self.manifest().model_copy(update=changes)
        self.write_manifest(manifest)
        return manifest

    def add_judge(self, judge: JudgeSpec) -> None:
        """Record a judge in the manifest (once)."""
        manifest = self.manifest()
        if all((j.judge_id, j.rubric_hash) != (judge.judge_id, judge.rubric_hash) for j in manifest.judges):
            self.update_manifest(judges=[*manifest.judges, judge])

    def log(self, kind: str, detail: dict[str, Any]) -> None:
        """Append an event (start, resume, finish...) to the run's history."""
        self._db.execute("INSERT INTO events VALUES (?,?,?)", (now(), kind, json.dumps(detail)))

    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The run's history, oldest first."""
        rows = self._db.execute("SELECT at, kind, detail FROM events ORDER BY rowid").fetchall()
        return [(at, kind, json.loads(detail)) for at, kind, detail in rows]

    # -- items -------------------------------------------------------------------------------------
    def put_items(self, items: Iterable[Item]) -> None:
        """Record the run's items (id, category, subcategory, hash) so scores need no suite."""
        with self._tx():
            self._db.executemany(
                "INSERT OR IGNORE INTO items VALUES (?,?,?,?)",
                [(i.id, i.category.value, i.subcategory, i.content_hash()) for i in items],
            )

    def items(self) -> dict[str, tuple[Category, str]]:
        """Item id -> (category, subcategory)."""
        rows = self._db.execute("SELECT item_id, category, subcategory FROM items").fetchall()
        return {r[0]: (Category(r[1]), r[2]) for r in rows}

    # -- outputs -----------------------------------------------------------------------------------
    def plan(self, keys: Iterable[tuple[str, Direction, int, int]]) -> None:
        """Insert pending records for (item, direction, sample, seed) not yet known."""
        with self._tx():
            self._db.executemany(
                "INSERT OR IGNORE INTO outputs (item_id, direction, sample, status, seed, updated_at) "
                "VALUES (?,?,?,?,?,?)",
                [(i, str(d), s, OutputStatus.PENDING.value, seed, now()) for i, d, s, seed in keys],
            )

    def put_output(self, record: OutputRecord, image_png: bytes | None = None) -> OutputRecord:
        """Write one output durably; an image is stored (once) before the record that names it."""
        if image_png is not None:
            sha = sha256_bytes(image_png)
            target = self.image_path(sha)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(target, image_png)
            record = record.model_copy(update={"image_sha": sha})
        with self._tx():
            self._db.execute(
                "INSERT INTO outputs (item_id, direction, sample, status, seed, text, image_sha, error, "
                "meta, attempts, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (item_id, direction, sample) "
                "DO UPDATE SET status=excluded.status, seed=excluded.seed, text=excluded.text, "
                "image_sha=excluded.image_sha, error=excluded.error, meta=excluded.meta, "
                "attempts=outputs.attempts + 1, updated_at=excluded.updated_at",
                (
                    record.item_id,
                    str(record.direction),
                    record.sample,
                    record.status.value,
                    record.seed,
                    record.text,
                    record.image_sha,
                    record.error,
                    json.dumps(record.meta),
                    1,
                    now(),
                ),
            )
        return record

    def outputs(self, status: OutputStatus | None = None) -> list[OutputRecord]:
        """Output records, ordered by item, direction, sample."""
        query = (
            "SELECT item_id, direction, sample, status, seed, text, image_sha, error, meta, attempts "
            "FROM outputs"
        )
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status.value,)
        rows = self._db.execute(query + " ORDER BY item_id, direction, sample", args).fetchall()
        return [
            OutputRecord(
                item_id=r[0],
                direction=Direction(r[1]),
                sample=r[2],
                status=OutputStatus(r[3]),
                seed=r[4],
                text=r[5],
                image_sha=r[6],
                error=r[7],
                meta=json.loads(r[8]),
                attempts=r[9],
            )
            for r in rows
        ]

    def image_path(self, sha: str) -> Path:
        """Where the image with this hash lives."""
        return self.images_dir / sha[:2] / f"{sha}.png"

    # -- verdicts ----------------------------------------------------------------------------------
    def put_verdict(self, verdict: VerdictRecord) -> None:
        """Write (or replace) one verdict durably."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    verdict.output_key,
                    verdict.judge_id,
                    verdict.rubric_hash,
                    verdict.item_id,
                    str(verdict.direction),
                    verdict.sample,
                    verdict.status.value,
                    None if verdict.passed is None else int(verdict.passed),
                    verdict.score,
                    verdict.reason,
                    verdict.raw,
                    json.dumps(verdict.meta),
                    now(),
                ),
            )

    def verdict_statuses(self, judge_id: str, rubric_hash: str) -> dict[str, VerdictStatus]:
        """Output key -> status of this judge's (and rubric's) cached verdicts, in one query."""
        rows = self._db.execute(
            "SELECT output_key, status FROM verdicts WHERE judge_id=? AND rubric_hash=?",
            (judge_id, rubric_hash),
        )
        return {key: VerdictStatus(status) for key, status in rows}

    def verdicts(self, judge_id: str | None = None) -> list[VerdictRecord]:
        """All verdicts (of one judge id, when given)."""
        if judge_id is None:
            return list(self._verdicts("", ()))
        return list(self._verdicts("WHERE judge_id=?", (judge_id,)))

    def _verdicts(self, where: str, args: tuple[Any, ...]) -> Iterator[VerdictRecord]:
        for r in self._db.execute(
            "SELECT output_key, judge_id, rubric_hash, item_id, direction, sample, status, passed, score, "
            f"reason, raw, meta FROM verdicts {where} ORDER BY item_id, direction, sample",
            args,
        ):
            yield VerdictRecord(
                output_key=r[0],
                judge_id=r[1],
                rubric_hash=r[2],
                item_id=r[3],
                direction=Direction(r[4]),
                sample=r[5],
                status=VerdictStatus(r[6]),
                passed=None if r[7] is None else bool(r[7]),
                score=r[8],
                reason=r[9],
                raw=r[10],
                meta=json.loads(r[11]),
            )

    # -- internals ---------------------------------------------------------------------------------
    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
