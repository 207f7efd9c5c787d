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

import contextlib
import fcntl  # POSIX: the manifest's read-modify-write is serialised between processes
import functools
import json
import os
import platform
import re
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import ValidationError

from gapeval.errors import GapevalError
from gapeval.files import output_folder
from gapeval.images import sha256_bytes
from gapeval.items import Category, Direction, Item
from gapeval.records import (
    SCHEMA_VERSION,
    JudgeSpec,
    OutputRecord,
    OutputStatus,
    RunManifest,
    RunRecords,
    RunSpec,
    VerdictRecord,
    VerdictStatus,
    now,
)

__all__ = ["RunStore", "git_revision", "new_manifest", "package_versions"]

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
CREATE TABLE IF NOT EXISTS in_force (
  judge_id TEXT NOT NULL, item_id TEXT NOT NULL, direction TEXT NOT NULL, rubric_hash TEXT NOT NULL,
  PRIMARY KEY (judge_id, item_id, direction));
CREATE TABLE IF NOT EXISTS run_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: Columns added after version 1, with their definitions (added in place when an old run is opened).
_ADDED_COLUMNS = {"outputs": {"wall_s": "REAL"}}


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


def new_manifest(
    spec: RunSpec, *, label: str = "", executor: str = "local", suite_source: str = ""
) -> RunManifest:
    """The manifest of a new run: a fresh run id, and the versions, git revision and platform of here."""
    return RunManifest(
        run_id=uuid.uuid4().hex,
        spec=spec,
        label=label,
        executor=executor,
        suite_source=suite_source,
        created_at=now(),
        versions=package_versions(),
        git_revision=git_revision(),
        platform=platform.platform(),
    )


def _check_database(db: Path, run: Path) -> None:
    """Refuse, before SQLite touches it, a database file that is empty or not SQLite at all."""
    try:
        with db.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise GapevalError(f"run.sqlite is unreadable ({exc.strerror})", file=db) from exc
    if not head:
        raise GapevalError(
            "run.sqlite is empty (0 bytes); nothing was changed: restore it from a copy, or run into a "
            "new --out",
            file=db,
        )
    if head != b"SQLite format 3\x00":
        raise GapevalError(
            "run.sqlite is not a SQLite database; nothing was changed: restore it from a copy, or run into a "
            "new --out",
            file=db,
        )


def _acquire(root: Path, command: str) -> IO[str]:
    """An exclusive, non-blocking lock on ``RUN/.lock``, with who holds it written inside."""
    fh = (root / ".lock").open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise GapevalError(
            f"is in use by {holder}; one writer at a time: wait for it to finish, or pick another --out",
            file=root,
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({command}, since {now()})\n")
    fh.flush()
    return fh


def _release(fh: IO[str]) -> None:
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: str) -> bool:
    """Whether ``value`` is a SHA-256 as gapeval writes it: 64 lower-case hex digits."""
    return _SHA256.fullmatch(value) is not None


F = TypeVar("F", bound=Callable[..., Any])


def _rows_of(table: str) -> Callable[[F], F]:
    """A reader of ``table``'s rows: a row that is not what gapeval writes is one line, not a traceback.

    A run directory (or a bundle) may come from someone else; its database is data like any other file.
    """

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def read(self: RunStore, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (ValueError, TypeError, ValidationError) as exc:  # JSONDecodeError is a ValueError
                why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                raise GapevalError(f"a row cannot be read ({why})", file=self.path / "run.sqlite",
                                   field=table) from None  # fmt: skip

        return read  # type: ignore[return-value]

    return wrap


def image_file(run_dir: str | Path, sha: str) -> Path:
    """Where a run directory keeps the generated image with this SHA-256.

    Raises:
        GapevalError: ``sha`` is not 64 hex digits (a run or bundle from elsewhere is data, never a path).

    """
    if not is_sha256(sha):
        raise GapevalError(f"not a SHA-256: {sha[:80]!r}", file=Path(run_dir) / "run.sqlite",
                           field="outputs.image_sha")  # fmt: skip
    return Path(run_dir) / "images" / sha[:2] / f"{sha}.png"


class RunStore:
    """A run directory opened for reading and writing.

    Use :meth:`create` for a new run, :meth:`open` for an existing one, or :meth:`open_or_create` to
    resume when the spec matches.
    """

    def __init__(self, path: Path, *, new: bool = False) -> None:
        self.path = path
        self.manifest_path = path / "manifest.json"
        self.images_dir = path / "images"
        self._lock_fh: IO[str] | None = None
        db_path = path / "run.sqlite"
        if not new:
            _check_database(db_path, path)
        try:
            self._db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
            # Read before anything writes (switching to WAL rewrites the header): a database that is
            # not a run's is left exactly as it was.
            if (
                not new
                and not self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='outputs'"
                ).fetchone()
            ):
                self._db.close()
                raise GapevalError(
                    "run.sqlite holds no gapeval tables (emptied or replaced); nothing was changed: "
                    "restore it from a copy, or run into a new --out",
                    file=db_path,
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against process crashes (kill -9) in WAL mode; only power loss can drop
            # the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                for name, decl in columns.items():
                    if name not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        except sqlite3.DatabaseError as exc:
            raise GapevalError(
                f"run.sqlite is damaged ({exc}); nothing was changed: restore it from a copy, or run into a "
                "new --out",
                file=db_path,
            ) from exc

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        spec: RunSpec,
        model_description: dict[str, Any] | None = None,
        *,
        label: str = "",
        executor: str = "local",
        command: str = "gapeval",
        manifest: RunManifest | None = None,
    ) -> RunStore:
        """Make a new run directory, owned (locked) by this process.

        ``manifest`` is the one to write (from :func:`new_manifest`); by default a new one for ``spec``.

        Raises:
            GapevalError: The folder holds a run (or a run database without its manifest), holds files
                that are not a run, or another process is creating a run there.

        """
        root = Path(path)
        if root.is_dir() and not (root / "manifest.json").exists() and not (root / "run.sqlite").exists():
            strangers = [
                p.name for p in root.iterdir() if p.name not in (".lock", ".manifest.lock", "images")
            ]
            if strangers:
                raise GapevalError(
                    f"exists and is not a gapeval run (holds {strangers[0]!r}); gapeval writes only into "
                    "a new or empty folder: pick another --out",
                    file=root,
                )
        output_folder(root)
        lock = _acquire(root, command)
        try:
            if (root / "manifest.json").exists():
                raise GapevalError("already holds a run; use it to resume or pick another --out", file=root)
            if (root / "run.sqlite").exists():
                raise GapevalError(
                    "holds a run database but no manifest.json (lost or deleted): refusing to adopt its "
                    "outputs for another run; restore the manifest, or pick another --out",
                    file=root,
                )
            (root / "images").mkdir(exist_ok=True)
            if manifest is None:
                manifest = new_manifest(spec, label=label, executor=executor)
            if model_description:
                manifest = manifest.model_copy(update={"model_description": model_description})
            store = cls(root, new=True)
        except BaseException:
            _release(lock)
            raise
        store._lock_fh = lock
        store._db.execute("INSERT OR REPLACE INTO run_meta VALUES ('run_id', ?)", (manifest.run_id,))
        store.write_manifest(manifest)
        return store

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        """Open an existing run directory (for reading, or for writing after :meth:`lock`).

        Raises:
            GapevalError: Not a run directory, a damaged database, or a manifest of another run.

        """
        root = Path(path)
        if not (root / "manifest.json").is_file() and (root / "run.sqlite").is_file():
            raise GapevalError(
                "holds a run database but no manifest.json (lost or deleted): restore the manifest; "
                "gapeval will not guess what the outputs belong to",
                file=root,
            )
        if not (root / "manifest.json").is_file() or not (root / "run.sqlite").is_file():
            raise GapevalError("not a run directory (manifest.json or run.sqlite missing)", file=root)
        store = cls(root)
        try:
            manifest = store.manifest()  # validates
            row = store._db.execute("SELECT value FROM run_meta WHERE key='run_id'").fetchone()
            if row is None:
                # Version 1 kept the run id in the manifest only: record it in the database now.
                store._db.execute("INSERT INTO run_meta VALUES ('run_id', ?)", (manifest.run_id,))
            elif row[0] != manifest.run_id:
                raise GapevalError(
                    f"manifest.json is of run {manifest.run_id[:12]}, but run.sqlite holds run "
                    f"{row[0][:12]}: they do not belong together; restore the run's own manifest",
                    file=store.manifest_path,
                    field="run_id",
                )
        except BaseException:
            store.close()
            raise
        return store

    def lock(self, command: str = "gapeval") -> None:
        """Become the run directory's one writer until :meth:`close` (released on a crash too).

        Raises:
            GapevalError: Another process holds it, named with its pid, command and start time.

        """
        if self._lock_fh is None:
            self._lock_fh = _acquire(self.path, command)

    @classmethod
    def open_or_create(
        cls,
        path: str | Path,
        spec: RunSpec,
        model_description: dict[str, Any] | None = None,
        *,
        command: str = "gapeval",
        relocatable: bool = False,
    ) -> tuple[RunStore, bool]:
        """Resume the run at ``path`` if its spec matches, else create it; either way, lock it.

        With ``relocatable`` (a model whose spec is its address, such as a model server), a spec that
        differs only in ``model`` resumes when the model's identity is the same: the address moved, the
        model did not. The manifest then records the new address and the history says so.

        Returns:
            The store and whether it resumed an existing run.

        Raises:
            GapevalError: ``path`` holds a run of a different spec (naming the first differing field),
                is in use by another process, or is not a run directory.

        """
        root = Path(path)
        if not (root / "manifest.json").exists():
            return cls.create(root, spec, model_description, command=command), False
        store = cls.open(root)
        try:
            store.lock(command)
            old = store.manifest().spec
            if (
                not old.model_identity
                and spec.model_identity
                and old.model_copy(update={"model_identity": spec.model_identity}) == spec
            ):
                # A version-1 run recorded no identity: adopt the current one, and say so in the history.
                store.update_manifest(spec=spec)
                store.log("identity_adopted", {"model_identity": spec.model_identity})
                return store, True
            diff = old.first_difference(spec)
            if diff == "model" and relocatable and spec.model_identity:
                moved = old.model_copy(update={"model": spec.model})
                drop = {"server"}  # earlier versions recorded the address in the identity too
                same = {k: v for k, v in old.model_identity.items() if k not in drop} == spec.model_identity
                if same and moved.model_copy(update={"model_identity": spec.model_identity}) == spec:
                    store.update_manifest(spec=spec)
                    store.log("model_moved", {"from": old.model, "to": spec.model})
                    return store, True
            if diff is not None:
                raise GapevalError(
                    f"holds a run of a different spec ({diff}: {getattr(old, diff)!r} != "
                    f"{getattr(spec, diff)!r}); pick another --out",
                    file=root / "manifest.json",
                    field=f"spec.{diff}",
                )
        except BaseException:
            store.close()
            raise
        return store, True

    def close(self) -> None:
        """Close the database and give up ownership."""
        self._db.close()
        if self._lock_fh is not None:
            _release(self._lock_fh)
            self._lock_fh = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manifest ----------------------------------------------------------------------------------
    def manifest(self) -> RunManifest:
        """Read ``manifest.json`` (a version-1 manifest is migrated in memory).

        Raises:
            GapevalError: The manifest is unreadable, or written by a newer gapeval.

        """
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GapevalError(
                f"unreadable manifest ({exc.__class__.__name__})", file=self.manifest_path
            ) from exc
        if not isinstance(data, dict):
            raise GapevalError("manifest is not a JSON object", file=self.manifest_path)
        version_ = data.get("schema_version", 1)
        if not isinstance(version_, int) or version_ > SCHEMA_VERSION:
            raise GapevalError(
                f"schema version {version_!r} is newer than this gapeval reads ({SCHEMA_VERSION}); "
                "upgrade gapeval",
                file=self.manifest_path,
                field="schema_version",
            )
        if version_ == 1:
            # Version 1 had no judge chain and no model identity: the chain was the judges in use order.
            data["judge_chain"] = [j.get("judge_id") for j in data.get("judges", []) if isinstance(j, dict)]
            data["schema_version"] = SCHEMA_VERSION
        try:
            return RunManifest.model_validate(data)
        except ValueError as exc:
            raise GapevalError(
                f"invalid manifest ({exc.__class__.__name__})", file=self.manifest_path
            ) from exc

    @contextlib.contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        # Two processes updating the manifest at once would each write back a stale copy.
        with (self.path / ".manifest.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def write_manifest(self, manifest: RunManifest) -> None:
        """Replace ``manifest.json`` atomically."""
        _write_atomic(self.manifest_path, manifest.model_dump_json(indent=2).encode())

    def update_manifest(self, **changes: Any) -> RunManifest:
        """Set top-level manifest fields (read, change and write under an exclusive lock)."""
        with self._manifest_lock():
            manifest = self.manifest().model_copy(update=changes)
            self.write_manifest(manifest)
        return manifest

    def record_judging(self, chain: Sequence[JudgeSpec]) -> RunManifest:
        """Record a judging's chain: each judge (replacing its earlier entry) and the chain's order."""
        with self._manifest_lock():
            manifest = self.manifest()
            judges = list(manifest.judges)
            for spec in chain:
                at = next((k for k, j in enumerate(judges) if j.judge_id == spec.judge_id), None)
                if at is None:
                    judges.append(spec)
                else:
                    judges[at] = spec
            manifest = manifest.model_copy(
                update={"judges": judges, "judge_chain": [j.judge_id for j in chain]}
            )
            self.write_manifest(manifest)
        return manifest

    def log(self, kind: str, detail: dict[str, Any]) -> None:
        """Append an event (start, resume, finish...) to the run's history."""
        self._db.execute("INSERT INTO events VALUES (?,?,?)", (now(), kind, json.dumps(detail)))

    @_rows_of("events")
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

    @_rows_of("items")
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
                "meta, attempts, updated_at, wall_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (item_id, direction, sample) "
                "DO UPDATE SET status=excluded.status, seed=excluded.seed, text=excluded.text, "
                "image_sha=excluded.image_sha, error=excluded.error, meta=excluded.meta, "
                "attempts=outputs.attempts + 1, updated_at=excluded.updated_at, wall_s=excluded.wall_s",
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
                    record.wall_s,
                ),
            )
        return record

    @_rows_of("outputs")
    def outputs(self, status: OutputStatus | None = None) -> list[OutputRecord]:
        """Output records, ordered by item, direction, sample."""
        query = (
            "SELECT item_id, direction, sample, status, seed, text, image_sha, error, meta, attempts, "
            "wall_s FROM outputs"
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
                wall_s=r[10],
            )
            for r in rows
        ]

    def image_path(self, sha: str) -> Path:
        """Where the image with this hash lives."""
        return image_file(self.path, sha)

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

    @_rows_of("verdicts")
    def verdict_statuses(self, judge_id: str) -> dict[tuple[str, str], VerdictStatus]:
        """(output key, rubric hash) -> status of this judge's cached verdicts, in one query."""
        rows = self._db.execute(
            "SELECT output_key, rubric_hash, status FROM verdicts WHERE judge_id=?", (judge_id,)
        )
        return {(key, rubric_hash): VerdictStatus(status) for key, rubric_hash, status in rows}

    @_rows_of("verdicts")
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

    def set_in_force(self, judge_id: str, hashes: dict[tuple[str, Direction], str]) -> None:
        """Record, per (item, direction), the rubric hash this judge's latest judging used."""
        with self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO in_force VALUES (?,?,?,?)",
                [(judge_id, i, str(d), h) for (i, d), h in hashes.items()],
            )

    def in_force(self) -> dict[str, dict[str, str]]:
        """Judge id -> {item and direction joined by a NUL: rubric hash}; see :class:`RunRecords`."""
        out: dict[str, dict[str, str]] = {}
        for judge_id, item_id, direction, rubric_hash in self._db.execute(
            "SELECT judge_id, item_id, direction, rubric_hash FROM in_force"
        ):
            out.setdefault(judge_id, {})[f"{item_id}\0{direction}"] = rubric_hash
        return out

    def records(self) -> RunRecords:
        """Everything scoring needs, in one read (scoring itself never touches the store)."""
        return RunRecords(
            path=str(self.path),
            manifest=self.manifest(),
            items=self.items(),
            outputs=self.outputs(),
            verdicts=self.verdicts(),
            in_force=self.in_force(),
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
