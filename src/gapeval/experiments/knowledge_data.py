"""Training data of a knowledge experiment: model-neutral examples, drawn each step or read from JSONL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gapeval.errors import GapevalError
from gapeval.experiments.knowledge_spec import ARM_DIRECTIONS, KnowledgeSpec
from gapeval.images import safe_join, verify_image
from gapeval.suites.shapes import tasks, world


@dataclass
class Example:
    """One training sequence, model-neutral.

    Attributes:
        direction: ``und`` (image + prompt -> answer) or ``gen`` (prompt [+ input image] -> target).
        prompt: The question or the drawing instruction.
        image: The understanding input image, or the image a generation example edits.
        answer: The understanding answer.
        target: The image a generation example must produce.
        replay: Whether it is ordinary data replayed against forgetting (not the taught knowledge).

    """

    direction: str
    prompt: str
    image: Image.Image | None = None
    answer: str = ""
    target: Image.Image | None = None
    replay: bool = False


def spec_examples(specs: Sequence[tasks.Spec], rng: np.random.Generator, direction: str) -> list[Example]:
    """Examples of one direction from world specs, rendered with jitter."""
    from gapeval.toy.data import worked_answer

    out = []
    for s in specs:
        if direction == "und":
            img = world.render(s.und_scene, rng) if s.und_scene is not None else None
            out.append(Example("und", s.und_prompt, img, answer=worked_answer(s)))
        else:
            src = world.render(s.gen_input, rng) if s.gen_input is not None else None
            out.append(Example("gen", s.gen_prompt, src, target=world.render(s.gen_target, rng)))
    return out


def _entity_of(s: tasks.Spec) -> str | None:
    entity = s.extra.get("entity")
    return str(entity) if entity is not None else None


def unrelated_specs(rng: np.random.Generator, n: int, avoid: set[str], split: str) -> list[tasks.Spec]:
    """``n`` ordinary specs (categories balanced) about none of the entities in ``avoid``."""
    from gapeval.toy.data import sample_specs

    out: list[tasks.Spec] = []
    while len(out) < n:
        out += [s for s in sample_specs(rng, n - len(out), split) if _entity_of(s) not in avoid]
    return out


class Sampler:
    """Draws the training batch of one arm: new-knowledge examples plus replay.

    Args:
        spec: The experiment.
        arm: Which direction(s) train.
        seed: The data seed (with the training seed, it fixes every batch).
        root: Where the spec lives (user data paths are relative to it).

    """

    def __init__(self, spec: KnowledgeSpec, arm: str, seed: int, root: Path) -> None:
        self.spec, self.directions = spec, ARM_DIRECTIONS[arm]
        self.rng = np.random.default_rng(seed)
        self.looks = spec.looks()
        self.avoid = {f.name for f in spec.facts}
        self.user = (
            load_examples(safe_join(root, spec.data.train, file=root, field="data.train"))
            if spec.data.train
            else None
        )

    def knowledge(self, direction: str, n: int) -> list[Example]:
        """``n`` examples of the taught facts in ``direction``."""
        if self.user is not None:
            pool = [e for e in self.user if e.direction == direction]
            if not pool:
                raise GapevalError(f"the training data holds no {direction} example", field="data.train")
            return [pool[int(i)] for i in self.rng.integers(len(pool), size=n)]
        specs = []
        for _ in range(n):
            fact = self.spec.facts[int(self.rng.integers(len(self.spec.facts)))]
            cell = int(self.rng.integers(world.GRID * world.GRID))
            specs.append(tasks.entity_spec(self.rng, fact.name, cell, fact.obj))
        return spec_examples(specs, self.rng, direction)

    def __call__(self) -> list[Example]:
        """One step's examples: ``per_direction`` per trained direction, then ``replay`` ordinary ones."""
        batch: list[Example] = []
        for d in self.directions:
            batch += self.knowledge(d, self.spec.train.per_direction)
        n_gen = self.spec.train.replay // 2
        if self.spec.train.replay:
            specs = unrelated_specs(self.rng, self.spec.train.replay - n_gen, self.avoid, "train")
            for e in spec_examples(specs, self.rng, "und") + spec_examples(specs[:n_gen], self.rng, "gen"):
                e.replay = True
                batch.append(e)
        return batch


def load_examples(file: Path) -> list[Example]:
    """Training examples from a JSONL file (see :class:`DataSettings`).

    Raises:
        GapevalError: Naming the file, line and field of the first bad line.

    """
    if not file.is_file():
        raise GapevalError("training data file does not exist", file=file, field="data.train")
    out: list[Example] = []
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = Path(f"{file}:{lineno}")
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GapevalError(f"not valid JSON ({exc.msg})", file=where) from exc
        if not isinstance(rec, dict) or rec.get("direction") not in ("und", "gen"):
            raise GapevalError("direction must be und or gen", file=where, field="direction")
        if not isinstance(rec.get("prompt"), str) or not rec["prompt"].strip():
            raise GapevalError("prompt is missing", file=where, field="prompt")

        def image(key: str, rec: dict[str, Any] = rec, where: Path = where) -> Image.Image | None:
            if rec.get(key) is None:
                return None
            if not isinstance(rec[key], str):
                raise GapevalError("must be an image path", file=where, field=key)
            path = safe_join(file.parent, rec[key], file=where, field=key)
            verify_image(path, file=where, field=key)
            with Image.open(path) as img:
                return img.convert("RGB")

        if rec["direction"] == "und":
            if not isinstance(rec.get("answer"), str) or not rec["answer"].strip():
                raise GapevalError("an understanding example needs an answer", file=where, field="answer")
            out.append(Example("und", rec["prompt"], image("image"), answer=rec["answer"]))
        else:
            target = image("target")
            if target is None:
                raise GapevalError("a generation example needs a target image", file=where, field="target")
            out.append(Example("gen", rec["prompt"], image("image"), target=target))
    if not out:
        raise GapevalError("no training examples", file=file, field="data.train")
    return out
