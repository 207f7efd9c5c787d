"""A run as one shareable file: ``gapeval export RUN -o FILE``.

A bundle is a zip holding the run directory (manifest, database with every output and every verdict,
each with its judge id, rubric hash, reason and raw judge reply; the generated images) and a snapshot of
the suite (``suite.json`` with every item, and the question and reference images by SHA-256). Someone
without the model, or the dataset, can then score, re-judge and report on it: ``gapeval score FILE``,
``gapeval judge FILE -j ...``, ``gapeval report FILE``.

A bundle is opened by extracting it beside itself (``FILE.d/``, reused while the file is unchanged);
judging one writes the new verdicts back into the file. Secrets never enter a bundle: the manifest
already redacts option values that look like keys, and keys are never stored anywhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from pydantic import ValidationError

from gapeval.errors import GapevalError
from gapeval.files import output_file, read_json
from gapeval.items import Item
from gapeval.records import now
from gapeval.specfile import validation_error
from gapeval.store import RunStore, is_sha256, package_versions
from gapeval.suites.base import Suite

FORMAT = "gapeval-bundle"
VERSION = 1
#: Files of a run directory that stay out of a bundle (locks, the rendered report).
_LEFT_OUT = {".lock", ".manifest.lock"}
#: Largest bundle member accepted when extracting (a bundle is data from someone else).
MAX_MEMBER_BYTES = 8 * 2**30
#: Largest ratio of a member's size to its compressed size (PNGs and SQLite compress far less).
MAX_RATIO = 100
#: Most members a bundle may hold.
MAX_MEMBERS = 1_000_000


def max_bundle_bytes() -> int:
    """The cap on a bundle's total extracted size (``GAPEVAL_MAX_BUNDLE_BYTES``, default 16 GiB)."""
    value = os.environ.get("GAPEVAL_MAX_BUNDLE_BYTES", "")
    return int(value) if value.isdigit() and int(value) > 0 else 16 * 2**30


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle file (a zip with the bundle marker).

    Raises:
        GapevalError: A zip file whose directory cannot be read.

    """
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    try:
        with zipfile.ZipFile(p) as z:
            return "bundle.json" in z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise GapevalError(f"damaged zip file ({exc})", file=p) from None


def export(run_dir: str | Path, out: str | Path, suite: Suite | None) -> Path:
    """Pack a run (and its suite's items and images, when the suite is given) into ``out``.

    Raises:
        GapevalError: The run cannot be opened.

    """
    run = Path(run_dir)
    with RunStore.open(run) as store:
        manifest = store.manifest()
    target = output_file(out)
    tmp = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        meta = {"format": FORMAT, "version": VERSION, "run_id": manifest.run_id, "created_at": now(),
                "gapeval": package_versions().get("gapeval", ""), "has_suite": suite is not None}  # fmt: skip
        z.writestr("bundle.json", json.dumps(meta, indent=2))
        for path in sorted(run.rglob("*")):
            rel = path.relative_to(run)
            if path.is_file() and rel.name not in _LEFT_OUT and rel.parts[0] != "report":
                z.write(path, f"run/{rel.as_posix()}")
        if suite is not None:
            images: dict[str, str] = {}
            for item in suite.items:
                for ref in (*item.und.images, item.gen.input_image, item.refs.image):
                    if ref is not None and ref.sha256 not in images:
                        images[ref.sha256] = ref.path
                        z.write(ref.path, f"suite_images/{ref.sha256}")
            snapshot = {
                "name": suite.name,
                "version": suite.version,
                "defaults": suite.defaults,
                "judges": list(suite.judges),
                "items": [i.model_dump(mode="json") for i in suite.items],
            }
            z.writestr("suite.json", json.dumps(snapshot))
    os.replace(tmp, target)  # a bundle is whole or absent
    return target


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _meta(bundle: Path, z: zipfile.ZipFile) -> dict[str, object]:
    """``bundle.json``, checked: a JSON object of this format and a version this gapeval reads."""
    try:
        meta = json.loads(z.read("bundle.json"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise GapevalError(
            f"not valid JSON ({exc.__class__.__name__})", file=bundle, field="bundle.json"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GapevalError(f"not a {FORMAT} file", file=bundle, field="bundle.json: format")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise GapevalError(f"version must be a positive integer, not {version!r}", file=bundle,
                           field="bundle.json: version")  # fmt: skip
    if version > VERSION:
        raise GapevalError(f"bundle format {version} is newer than this gapeval reads ({VERSION})",
                           file=bundle, field="bundle.json: version")  # fmt: skip
    return meta


def _check_members(bundle: Path, z: zipfile.ZipFile) -> None:
    """Refuse members that would land outside, and archives that inflate far beyond their size."""
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise GapevalError(f"holds {len(infos)} members; at most {MAX_MEMBERS} are read", file=bundle)
    total = 0
    for info in infos:
        name = Path(info.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in info.filename or "\0" in info.filename:
            raise GapevalError(f"member {info.filename!r} would land outside the bundle's folder",
                               file=bundle, field="zip")  # fmt: skip
        if info.file_size > MAX_MEMBER_BYTES or (
            info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1)
        ):
            raise GapevalError(
                f"member {info.filename!r} inflates to {info.file_size} bytes from {info.compress_size}; "
                "refused (a bundle's members are at most 8 GiB and compress at most 100:1)",
                file=bundle, field="zip",
            )  # fmt: skip
        total += info.file_size
    if total > max_bundle_bytes():
        raise GapevalError(f"inflates to {total} bytes, over the {max_bundle_bytes()} allowed "
                           "(GAPEVAL_MAX_BUNDLE_BYTES)", file=bundle, field="zip")  # fmt: skip


def _extract(bundle: Path, z: zipfile.ZipFile, staging: Path) -> None:
    """Extract every file member, never writing more bytes than its header declared."""
    for info in z.infolist():
        target = staging / info.filename
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with z.open(info) as src, target.open("wb") as dst:
            while block := src.read(1 << 20):
                written += len(block)
                if written > info.file_size:
                    raise GapevalError(f"member {info.filename!r} is larger than it declares",
                                       file=bundle, field="zip")  # fmt: skip
                dst.write(block)


def _verify_content(bundle: Path, staging: Path) -> None:
    """Every content-addressed file must be named by 64 hex digits and hold the bytes it names."""
    for folder, pattern in ((staging / "run" / "images", "*/*"), (staging / "suite_images", "*")):
        if not folder.is_dir():
            continue
        for path in folder.glob(pattern):
            if path.name.startswith("."):  # a writer's leftover temporary file: never referenced
                continue
            sha = path.name.removesuffix(".png")
            rel = path.relative_to(staging).as_posix()
            if path.is_dir() or not is_sha256(sha):
                raise GapevalError("is not named by a SHA-256", file=bundle, field=rel)
            if _digest(path) != sha:
                raise GapevalError("does not hold the bytes its name's SHA-256 says (altered)",
                                   file=bundle, field=rel)  # fmt: skip


def open_bundle(path: str | Path) -> Path:
    """Extract a bundle beside itself (once per content) and return its run directory.

    A bundle is data from someone else: every member must land inside the extraction folder, the
    archive may not inflate past its caps, and every image must hold the bytes its SHA-256 name says.
    The extraction folder ``FILE.d`` is replaced only when gapeval made it.

    Raises:
        GapevalError: Not a bundle, a damaged zip, an unknown format version, a member that would land
            outside or inflate too far, an altered image, or a ``FILE.d`` folder gapeval did not make.

    """
    bundle = Path(path)
    if not is_bundle(bundle):
        raise GapevalError("not a gapeval bundle", file=bundle, field="bundle.json")
    digest = _digest(bundle)
    folder = bundle.with_name(bundle.name + ".d")
    stamp = folder / ".bundle-digest"
    if stamp.is_file() and stamp.read_text() == digest:
        return folder / "run"
    if (folder.exists() or folder.is_symlink()) and not (folder.is_dir() and stamp.is_file()):
        raise GapevalError(
            "exists and was not made by gapeval; move it away to open the bundle beside it", file=folder
        )
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=bundle.parent))
    try:
        with zipfile.ZipFile(bundle) as z:
            _meta(bundle, z)
            _check_members(bundle, z)
            _extract(bundle, z, staging)
        _verify_content(bundle, staging)
        (staging / ".bundle-digest").write_text(digest)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: a compression zipfile cannot read
        raise GapevalError(f"damaged zip file ({exc})", file=bundle) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder / "run"


def bundle_of(run_dir: Path) -> Path | None:
    """The bundle file a run directory was extracted from (None for an ordinary run)."""
    folder = run_dir.parent
    if run_dir.name == "run" and folder.name.endswith(".d") and (folder / ".bundle-digest").is_file():
        return folder.with_name(folder.name.removesuffix(".d"))
    return None


def suite_of_bundle(run_dir: Path) -> Suite | None:
    """The suite snapshot of an extracted bundle, its images pointing into the extraction.

    Raises:
        GapevalError: ``suite.json`` is not valid, or an image it names is not a SHA-256 of an image the
            bundle holds (naming the item and field).

    """
    bundle = bundle_of(run_dir)
    if bundle is None:
        return None
    snapshot_path = run_dir.parent / "suite.json"
    if not snapshot_path.is_file():
        return None
    where = f"{bundle}: suite.json"
    try:
        snap = read_json(snapshot_path)
    except GapevalError as exc:
        raise GapevalError(exc.message, file=where) from None
    if not isinstance(snap, dict) or not isinstance(snap.get("items"), list):
        raise GapevalError("must be an object with a list of items", file=where, field="items")
    images = run_dir.parent / "suite_images"

    def relink(node: object, at: str) -> object:
        if isinstance(node, dict):
            if "sha256" in node and "path" in node:
                sha = node["sha256"]
                if not isinstance(sha, str) or not is_sha256(sha):
                    raise GapevalError(f"not a SHA-256: {sha!r}", file=where, field=f"{at}.sha256")
                if not (images / sha).is_file():
                    raise GapevalError("names an image the bundle does not hold", file=where,
                                       field=f"{at}.sha256")  # fmt: skip
                return {**node, "path": str(images / sha)}
            return {k: relink(v, f"{at}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [relink(v, f"{at}[{k}]") for k, v in enumerate(node)]
        return node

    items = []
    for k, raw in enumerate(snap["items"]):
        try:
            items.append(Item.model_validate(relink(raw, f"items[{k}]")))
        except ValidationError as exc:
            err = validation_error(exc, where)
            raise GapevalError(err.message, file=where, field=f"items[{k}].{err.field}") from None
    for key, kind in (("name", str), ("version", str), ("defaults", dict), ("judges", list)):
        if key in snap and not isinstance(snap[key], kind):
            raise GapevalError(f"must be a {kind.__name__}", file=where, field=key)
    try:
        return Suite(name=str(snap.get("name", "")), version=str(snap.get("version", "")), root=str(images),
                     items=tuple(items), defaults=snap.get("defaults", {}),
                     judges=tuple(snap.get("judges", ())))  # fmt: skip
    except ValidationError as exc:
        raise validation_error(exc, where) from None


def repack(run_dir: Path) -> Path | None:
    """Write an extracted bundle's current state back into its file (after judging it)."""
    bundle = bundle_of(run_dir)
    if bundle is None:
        return None
    folder = run_dir.parent
    tmp = bundle.with_name(bundle.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and rel.name not in _LEFT_OUT and rel.name != ".bundle-digest":
                if rel.parts[0] == "run" and len(rel.parts) > 1 and rel.parts[1] == "report":
                    continue
                z.write(path, rel.as_posix())
    os.replace(tmp, bundle)
    (folder / ".bundle-digest").write_text(_digest(bundle))
    return bundle
