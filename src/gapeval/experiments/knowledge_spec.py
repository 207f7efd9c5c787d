"""A knowledge experiment's spec: what is taught, how each arm trains and is evaluated (YAML, validated)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
        lora_rank: LoRA rank (janus models, and the built-in model under ``strategy: {kind: lora}``).
        lora_alpha: LoRA scaling numerator (the same).
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


#: The presets of ``strategy.freeze``: every parameter that serves one side (the architecture variants
#: ``mot`` and ``towers`` have them; the shared model has none), or the token and position embeddings.
FREEZE_PRESETS = ("und-side", "gen-side", "embeddings")
StrategyKind = Literal["full", "lora", "frozen", "gradual"]


class Strategy(BaseModel):
    """How an arm's weights are fine-tuned (the same for every arm; part of the spec hash and run labels).

    Attributes:
        kind: ``full`` (every weight), ``lora`` (LoRA factors, rank ``train.lora_rank``, on every linear
            layer, plus the embedding rows of names the experiment adds; merged into the checkpoint after
            training), ``frozen`` (every weight except ``freeze``), ``gradual`` (gradual unfreezing: the
            output side first, one more block toward the input every ``unfreeze_every`` steps, the
            embeddings last). Default: ``full`` for the built-in model, ``lora`` for janus (its only one).
        freeze: For ``frozen``: module names of the model (``blocks.0``, ``blocks.1.mlp``, ``tok``...) or
            presets: ``und-side``, ``gen-side`` (the weights only one side reads; ``mot`` and ``towers``
            models), ``embeddings``.
        unfreeze_every: For ``gradual``: steps per stage (default: the steps spread evenly over the stages).
        align: Weight of a cross-direction alignment loss (0: none): each step, for every fact, one
            understanding request and one generation request about it are encoded, and a contrastive term
            (InfoNCE over the spec's facts, both ways) pulls the two paths' states of the same fact
            together and those of different facts apart. Built-in model only.
        align_at: Where the states are read: ``last`` (each request's last token, where the answer or the
            image starts) or ``entity`` (the fact's name token).
        align_layer: Which states: an index into the model's layer states (0 the embeddings, 1 .. L after
            each block, L + 1 the final normalised states; negative counts from the end).
        align_temperature: The contrastive term's temperature.

    """

    model_config = ConfigDict(extra="forbid")

    kind: StrategyKind | None = None
    freeze: list[str] = Field(default_factory=list)
    unfreeze_every: int | None = Field(None, ge=1)
    align: float = Field(0.0, ge=0, le=100)
    align_at: Literal["last", "entity"] = "last"
    align_layer: int = -1
    align_temperature: float = Field(0.1, gt=0, le=10)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Strategy:
        if self.kind == "frozen" and not self.freeze:
            presets = ", ".join(FREEZE_PRESETS)
            raise ValueError(f"kind frozen needs freeze: a list of modules or presets {presets}")
        if self.freeze and self.kind != "frozen":
            raise ValueError("freeze goes with kind frozen")
        if self.unfreeze_every is not None and self.kind != "gradual":
            raise ValueError("unfreeze_every goes with kind gradual")
        if not self.align and (self.align_at, self.align_layer, self.align_temperature) != ("last", -1, 0.1):
            raise ValueError("align_at, align_layer and align_temperature go with align > 0")
        return self

    def label(self) -> str:
        """A short name for run labels and tables, e.g. ``frozen gen-side``, ``full +align 0.1``."""
        kind = self.kind or "full"
        text = {
            "frozen": f"frozen {','.join(self.freeze)}",
            "gradual": f"gradual /{self.unfreeze_every}" if self.unfreeze_every else "gradual",
        }.get(kind, kind)
        return f"{text} +align {self.align:g}" if self.align else text


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
        strategy: How the weights are fine-tuned (see :class:`Strategy`).
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
    strategy: Strategy = Field(default_factory=Strategy, validate_default=True)
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

    @field_validator("strategy")
    @classmethod
    def _strategy_of_model(cls, v: Strategy, info: ValidationInfo) -> Strategy:
        # The model field comes first, so it is known here and the error names the strategy field.
        janus = str(info.data.get("model", "toy")).partition(":")[0] == "janus"
        if v.kind is None:
            v.kind = "lora" if janus else "full"
        if janus and (v.kind != "lora" or v.align):
            raise ValueError("janus models train LoRA only (kind lora, no align)")
        return v

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
