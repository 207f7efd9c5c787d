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
from pathlib import Path

from gapeval.errors import GapevalError
from gapeval.items import Item
from gapeval.records import now
from gapeval.store import RunStore, package_versions
from gapeval.suites.base import Suite

FORMAT = "gapeval-bundle"
VERSION = 1
#: Files of a run directory that stay out of a bundle (locks, the rendered report).
_LEFT_OUT = {".lock", ".manifest.lock"}
#: Largest bundle member accepted when extracting (a bundle is data from someone else).
MAX_MEMBER_BYTES = 8 * 2**30


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle file (a zip with the bundle marker)."""
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    with zipfile.ZipFile(p) as z:
        return "bundle.json" in z.namelist()


def export(run_dir: str | Path, out: str | Path, suite: Suite | None) -> Path:
    """Pack a run (and its suite's items and images, when the suite is given) into ``out``.

    Raises:
        GapevalError: The run cannot be opened.

    """
    run = Path(run_dir)
    with RunStore.open(run) as store:
        manifest = store.manifest()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
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


def open_bundle(path: str | Path) -> Path:
    """Extract a bundle beside itself (once per content) and return its run directory.

    Raises:
        GapevalError: Not a bundle, an unknown format version, or a member that would land outside.

    """
    bundle = Path(path)
    if not is_bundle(bundle):
        raise GapevalError("not a gapeval bundle", file=bundle, field="bundle.json")
    digest = _digest(bundle)
    folder = bundle.with_name(bundle.name + ".d")
    stamp = folder / ".bundle-digest"
    if stamp.is_file() and stamp.read_text() == digest:
        return folder / "run"
    with zipfile.ZipFile(bundle) as z:
        meta = json.loads(z.read("bundle.json"))
        if meta.get("format") != FORMAT or int(meta.get("version", 0)) > VERSION:
            raise GapevalError(f"bundle format {meta.get('version')!r} is newer than this gapeval reads",
                               file=bundle, field="bundle.json")  # fmt: skip
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=bundle.parent))
        try:
            for info in z.infolist():
                name = Path(info.filename)
                if name.is_absolute() or ".." in name.parts or info.file_size > MAX_MEMBER_BYTES:
                    raise GapevalError(f"member {info.filename!r} is not allowed", file=bundle, field="zip")
                z.extract(info, staging)
            (staging / ".bundle-digest").write_text(digest)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
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
    """The suite snapshot of an extracted bundle, its images pointing into the extraction."""
    if bundle_of(run_dir) is None:
        return None
    snapshot_path = run_dir.parent / "suite.json"
    if not snapshot_path.is_file():
        return None
    snap = json.loads(snapshot_path.read_text())
    images = run_dir.parent / "suite_images"

    def relink(node: object) -> object:
        if isinstance(node, dict):
            if "sha256" in node and "path" in node:
                return {**node, "path": str(images / str(node["sha256"]))}
            return {k: relink(v) for k, v in node.items()}
        if isinstance(node, list):
            return [relink(v) for v in node]
        return node

    items = tuple(Item.model_validate(relink(i)) for i in snap["items"])
    return Suite(name=snap["name"], version=snap["version"], root=str(images), items=items,
                 defaults=snap.get("defaults", {}), judges=tuple(snap.get("judges", ())))  # fmt: skip


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
