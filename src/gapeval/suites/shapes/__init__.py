"""The built-in procedural suite: ``shapes-v1`` (and ``shapes-v1-mini`` for quick runs).

Items are generated from a fixed seed, their images rendered to a cache folder on first use (a few
seconds), and the suite hash is recorded in every run. ``shapes-v2`` (and ``shapes-v2-mini``) hold the
same items, each also carrying a rendered reference image of its generation target (one correct result,
drawn canonically), so that a VLM judge sees what an exact judge knows; the new content is a new
version, so runs on v1 keep their suite. The decoding rule is part of the suite: answers
are decoded greedily, images are sampled (temperature 1) ``samples_gen`` times per prompt with recorded
per-request seeds.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gapeval.errors import GapevalError
from gapeval.items import Category, GenerationTask, ImageRef, Item, References, UnderstandingTask
from gapeval.suites.base import Suite
from gapeval.suites.shapes import tasks, world

VERSION = "1"
#: name -> (seed, items per category, generation samples per item)
SHAPES_SUITES: dict[str, tuple[int, int, int]] = {
    "shapes-v1": (20261123, 320, 3),
    "shapes-v1-mini": (20261124, 24, 2),
    "shapes-v2": (20261123, 320, 3),
    "shapes-v2-mini": (20261124, 24, 2),
}
#: Suites whose items carry a rendered reference image of the generation target.
WITH_REFERENCE = frozenset({"shapes-v2", "shapes-v2-mini"})
DECODING = {"und": "greedy", "gen": "ancestral sampling over image codes, temperature 1.0"}


def _kinds_of(category: Category) -> list[str]:
    return [k for k, (c, _) in tasks.KINDS.items() if c is category]


def specs(seed: int, per_category: int, split: str = "test") -> list[tasks.Spec]:
    """The item specs of a suite: ``per_category`` per category, spread evenly over its kinds."""
    rng = np.random.default_rng(seed)
    out: list[tasks.Spec] = []
    for category in Category:
        kinds = _kinds_of(category)
        for i in range(per_category):
            out.append(tasks.sample(kinds[i % len(kinds)], rng, split))
    return out


def scene_json(scene: world.Scene | None) -> list[list[str] | None] | None:
    """A scene as JSON."""
    return None if scene is None else [list(o) if o else None for o in scene]


def spec_to_item(
    spec: tasks.Spec, idx: int, folder: Path, rng: np.random.Generator, reference: bool = False
) -> Item:
    """Render a spec's images into ``folder`` and build the item (with ``reference``, also the target)."""
    item_id = f"{spec.kind}-{idx:04d}"

    def image(scene: world.Scene, name: str) -> ImageRef:
        path = folder / f"{item_id}-{name}.png"
        if not path.exists():
            world.render(scene, rng).save(path)
        else:
            world.render(scene, rng)  # keep the rng stream identical whether or not the file exists
        return ImageRef.from_file(path)

    und_img = image(spec.und_scene, "und") if spec.und_scene is not None else None
    gen_img = (
        und_img
        if spec.gen_input is not None and spec.gen_input == spec.und_scene
        else (image(spec.gen_input, "gen") if spec.gen_input is not None else None)
    )
    ref_img = None
    if reference:
        # Drawn canonically (no jitter, no draw from ``rng``): the items' other images stay those of v1.
        path = folder / f"{item_id}-ref.png"
        if not path.exists():
            world.render(spec.gen_target).save(path)
        ref_img = ImageRef.from_file(path)
    structured: dict[str, Any] = {
        "world": "shapes-v1",
        "kind": spec.kind,
        "key": json.loads(json.dumps(spec.key)),
        "answer_type": spec.answer_type,
        "answer_value": spec.answer_value,
        "gen_check": spec.gen_check,
        "und_scene": scene_json(spec.und_scene),
        "gen_input": scene_json(spec.gen_input),
        "gen_target": scene_json(spec.gen_target),
        "extra": spec.extra,
    }
    return Item(
        id=item_id,
        category=spec.category,
        subcategory=spec.kind,
        source_category=spec.category.value,
        und=UnderstandingTask(prompt=spec.und_prompt, images=(und_img,) if und_img else ()),
        gen=GenerationTask(prompt=spec.gen_prompt, input_image=gen_img),
        refs=References(
            text=spec.answer,
            image=ref_img,
            choice=spec.choice,
            counts=spec.answer_value if spec.answer_type == "counts" else None,
            structured=structured,
        ),
        source=item_id,
    )


def build(name: str, root: Path) -> Suite:
    """Generate (or reuse) the named shapes suite under ``root``."""
    seed, per_category, _ = SHAPES_SUITES[name]
    folder = root / f"{name}-v{VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    with_ref = name in WITH_REFERENCE
    items = tuple(
        spec_to_item(s, i, folder, rng, reference=with_ref) for i, s in enumerate(specs(seed, per_category))
    )
    return Suite(
        name=name,
        version="2" if with_ref else VERSION,
        root=str(folder),
        items=items,
        defaults={"samples_gen": SHAPES_SUITES[name][2], "samples_und": 1},
        judges=("scene",),
    )


class ShapesSource:
    """The registry's source for ``shapes-v1``, ``shapes-v2`` and their ``-mini`` versions."""

    @classmethod
    def load(cls, spec: str, *, skip_invalid: bool = False) -> Suite:
        """Generate (or reuse from the data home) the named shapes suite."""
        from gapeval.suites.base import data_home

        if spec not in SHAPES_SUITES:
            raise GapevalError(
                f"unknown shapes suite {spec!r}; known: {', '.join(SHAPES_SUITES)}", field="suite"
            )
        return build(spec, data_home() / "suites")


def spec_dict(spec: tasks.Spec) -> dict[str, Any]:
    """A spec as plain data (for tests and inspection)."""
    return asdict(spec)
