"""A knowledge experiment's spec: what is taught, how each arm trains and is evaluated (YAML, validated)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gapeval.errors import GapevalError
from gapeval.specfile import Seed, load_spec_file
from gapeval.suites.shapes import tasks, world

Experiment = Literal["inject", "edit"]
Arm = Literal["und", "gen", "both"]
_ARMS: tuple[Arm, ...] = ("und", "gen", "both")
#: The directions each arm trains.
ARM_DIRECTIONS: dict[str, tuple[str, ...]] = {"und": ("und",), "gen": ("gen",), "both": ("und", "gen")}
#: The probes of each experiment, the first being the knowledge that was taught.
PROBES: dict[str, tuple[str, ...]] = {
    "inject": ("target", "locality"),
    "edit": ("efficacy", "generalisation", "locality"),
}


def parse_look(text: str) -> world.Obj:
    """``"red triangle"`` -> ``("red", "triangle")``; anything else is a ValueError."""
    parts = text.lower().split()
    if len(parts) != 2 or parts[0] not in world.COLOURS or parts[1] not in world.SHAPES:
        raise ValueError(f"a look is 'COLOUR SHAPE' ({', '.join(world.COLOURS)}; {', '.join(world.SHAPES)})")
    return parts[0], parts[1]


class Fact(BaseModel):
    """One fact to teach: an entity's name and its look.

    Attributes:
        name: One lowercase word: a new name (inject) or an entity the world already has (edit).
        look: ``COLOUR SHAPE`` of the shapes world, e.g. ``red triangle``.

    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z]{2,20}$")
    look: str

    @field_validator("look")
    @classmethod
    def _look(cls, v: str) -> str:
        return " ".join(parse_look(v))

    @property
    def obj(self) -> world.Obj:
        """The look as a world object."""
        return parse_look(self.look)


class TrainSettings(BaseModel):
    """How each arm is trained (the same for every arm and seed).

    Attributes:
        steps: Optimiser steps.
        lr: Peak learning rate (linear warm-up, then cosine decay to 10%).
        warmup: Warm-up steps.
        weight_decay: AdamW weight decay.
        per_direction: New-knowledge sequences per trained direction per step.
        replay: Ordinary training sequences of the shapes world per step (half each direction), so that
            fine-tuning does not simply overwrite what the model knew; 0 for none.
        lora_rank: LoRA rank (transformers models only).
        lora_alpha: LoRA scaling numerator (transformers models only).
        threads: CPU threads for torch (the built-in model).

    """

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(300, ge=1, le=1_000_000)
    lr: float = Field(1e-3, gt=0, le=1)
    warmup: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    per_direction: int = Field(24, ge=1, le=4096)
    replay: int = Field(24, ge=0, le=4096)
    lora_rank: int = Field(8, ge=1, le=1024)
    lora_alpha: int = Field(16, ge=1)
    threads: int = Field(2, ge=1, le=256)


class EvalSettings(BaseModel):
    """How every arm is evaluated.

    Attributes:
        per_fact: Items per fact and probe (cells taken in turn, each with a fresh scene).
        locality: Unrelated held-out items of the shapes world (none about a fact of the spec).
        samples_gen: Images per generation prompt.
        seed: The run seed of every evaluation (the same for all arms, so their images are paired).
        n_boot: Bootstrap resamples for the intervals and p-values.

    """

    model_config = ConfigDict(extra="forbid")

    per_fact: int = Field(9, ge=1, le=900)
    locality: int = Field(48, ge=0, le=10_000)
    samples_gen: int = Field(3, ge=1, le=64)
    seed: Seed = 0
    n_boot: int = Field(1000, ge=0, le=100_000)


class DataSettings(BaseModel):
    """Where training and evaluation data come from (default: generated from the shapes world).

    Attributes:
        train: A JSONL file of training examples, one per line: ``{"direction": "und", "prompt": ...,
            "image": "img/a.png", "answer": ...}`` or ``{"direction": "gen", "prompt": ..., "target":
            "img/b.png"}`` (paths relative to the file). Each step draws from it with replacement.
        eval: An evaluation suite (a folder with ``suite.jsonl``); each line may carry ``"probe"`` (one
            of the experiment's probes; default the first) and ``"group"`` (the bootstrap's cluster,
            e.g. the entity; default the item id).

    """

    model_config = ConfigDict(extra="forbid")

    train: str | None = None
    eval: str | None = None


class KnowledgeSpec(BaseModel):
    """A knowledge experiment.

    Attributes:
        experiment: ``inject`` (new entities) or ``edit`` (new looks for known entities).
        name: A name for tables and labels.
        model: The model spec: ``toy`` / ``toy:CHECKPOINT`` (full fine-tuning) or ``janus:PATH`` (LoRA).
        model_options: Adapter options for loading and evaluating (``dtype``, ``device``...).
        facts: What is taught.
        arms: Which direction(s) each arm trains.
        seeds: Training seeds; every arm is trained once per seed and the item scores averaged.
        train: Training settings.
        eval: Evaluation settings.
        data: Your own data instead of the generated one.

    """

    model_config = ConfigDict(extra="forbid")

    experiment: Experiment
    name: str = Field("knowledge", pattern=r"^[A-Za-z0-9._-]{1,60}$")
    model: str = "toy"
    model_options: dict[str, str] = Field(default_factory=dict)
    facts: list[Fact] = Field(min_length=1, max_length=256)
    arms: list[Arm] = Field(default_factory=lambda: list(_ARMS), min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=32)
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    data: DataSettings = Field(default_factory=DataSettings)

    @model_validator(mode="after")
    def _facts(self) -> KnowledgeSpec:
        names = [f.name for f in self.facts]
        if len(set(names)) != len(names):
            raise ValueError("each fact names a different entity")
        if len(set(self.arms)) != len(self.arms) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("arms and seeds may not repeat")
        for f in self.facts:
            if self.experiment == "edit" and f.name not in tasks.LOOKS:
                raise ValueError(
                    f"{f.name!r} is no entity of the world; edits change one of {tasks.ENTITIES}"
                )
            if self.experiment == "edit" and tasks.LOOKS[f.name] == f.obj:
                raise ValueError(f"{f.name!r} already looks like a {f.look}: an edit must change it")
            if self.experiment == "inject" and f.name in tasks.LOOKS:
                raise ValueError(f"{f.name!r} is already an entity of the world; injection teaches new names")
        return self

    def digest(self) -> str:
        """SHA-256 over the normalised spec (defaults filled in, keys sorted)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()

    def looks(self) -> dict[str, world.Obj]:
        """Every entity's look once the spec's facts hold."""
        return {**tasks.LOOKS, **{f.name: f.obj for f in self.facts}}


def builtin_spec(experiment: Experiment) -> Path:
    """The built-in spec of an experiment (``gapeval knowledge inject`` with no argument)."""
    return Path(str(resources.files("gapeval.experiments") / "specs" / f"{experiment}.yaml"))


def load_spec(path: str | Path | None, experiment: Experiment) -> tuple[KnowledgeSpec, Path]:
    """Read and validate a spec (the built-in one when ``path`` is None).

    Raises:
        GapevalError: Unreadable YAML, an invalid field (named), or a spec of the other experiment.

    """
    file = Path(path) if path is not None else builtin_spec(experiment)
    spec = load_spec_file(file, KnowledgeSpec)
    if spec.experiment != experiment:
        raise GapevalError(
            f"this is a {spec.experiment} spec; run it with gapeval knowledge {spec.experiment}",
            file=file,
            field="experiment",
        )
    return spec, file
