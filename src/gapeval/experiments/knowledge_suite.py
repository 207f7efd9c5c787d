"""A knowledge experiment's evaluation suite: its probes as an ordinary JSONL suite, and read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gapeval.errors import GapevalError
from gapeval.experiments.knowledge_data import unrelated_specs
from gapeval.experiments.knowledge_spec import PROBES, KnowledgeSpec
from gapeval.suites.base import Suite
from gapeval.suites.shapes import spec_to_item, tasks, world


def probe_specs(spec: KnowledgeSpec, rng: np.random.Generator) -> list[tuple[str, str, tasks.Spec]]:
    """``(probe, group, world spec)`` for every evaluation item of the built-in data."""
    out: list[tuple[str, str, tasks.Spec]] = []
    cells = world.GRID * world.GRID
    for f in spec.facts:
        old = tasks.LOOKS.get(f.name) if spec.experiment == "edit" else None
        first = "target" if spec.experiment == "inject" else "efficacy"
        for k in range(spec.eval.per_fact):
            out.append((first, f.name, tasks.entity_spec(rng, f.name, k % cells, f.obj, old)))
        if spec.experiment == "edit":
            # New contexts for the same fact: the two-hop "pet of X", asked, drawn and added as an edit.
            owner = next(p for p, e in tasks.PETS.items() if e == f.name)
            for k in range(spec.eval.per_fact):
                s = tasks.pet_spec(rng, owner, k % cells, f.name, f.obj, edit=k % 2 == 1, distractor=old)
                out.append(("generalisation", f.name, s))
    avoid = {f.name for f in spec.facts}
    for k, s in enumerate(unrelated_specs(rng, spec.eval.locality, avoid, "test")):
        out.append(("locality", f"locality-{k}", s))
    return out


def write_eval_suite(spec: KnowledgeSpec, folder: Path) -> Path:
    """Write the built-in evaluation suite as JSONL + images (+ its sidecar) into ``folder``."""
    # Absolute, so that the items' (absolute) image paths can be written relative to it from any cwd.
    folder = folder.resolve()
    images = folder / "img"
    # Written afresh each time (byte-identical for the same spec): no image of another spec survives.
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir(parents=True)
    rng = np.random.default_rng(spec.eval.seed + 7)
    lines: list[dict[str, Any]] = []
    for idx, (probe, group, s) in enumerate(probe_specs(spec, rng)):
        item = spec_to_item(s, idx, images, rng)
        und = [str(Path(img.path).relative_to(folder)) for img in item.und.images]
        gen_in = item.gen.input_image
        lines.append({
            "id": f"{probe}-{idx:04d}", "category": item.category.value, "subcategory": s.kind,
            "probe": probe, "group": group,
            "und": {"prompt": item.und.prompt, "images": und},
            "gen": {"prompt": item.gen.prompt,
                    "input_image": str(Path(gen_in.path).relative_to(folder)) if gen_in else None},
            "refs": {"text": item.refs.text, "choice": item.refs.choice, "counts": item.refs.counts,
                     "structured": item.refs.structured},
        })  # fmt: skip
    (folder / "suite.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    meta: dict[str, Any] = {
        "name": f"knowledge:{spec.name}",
        "version": spec.digest()[:12],
        "defaults": {"samples_und": 1, "samples_gen": spec.eval.samples_gen},
        "judges": ["scene"],
    }
    (folder / "suite.json").write_text(json.dumps(meta, indent=2))
    return folder


def probes_of(suite: Suite, experiment: str) -> dict[str, tuple[str, str]]:
    """Item id -> (probe, bootstrap group), from the suite lines' ``probe`` and ``group`` fields."""
    known = PROBES[experiment]
    out: dict[str, tuple[str, str]] = {}
    for item in suite.items:
        raw = item.raw if isinstance(item.raw, dict) else {}
        probe = str(raw.get("probe") or known[0])
        if probe not in known:
            raise GapevalError(f"probe {probe!r} is not one of {', '.join(known)}", file=suite.root,
                               field=f"{item.id}.probe")  # fmt: skip
        out[item.id] = (probe, str(raw.get("group") or item.id))
    return out
