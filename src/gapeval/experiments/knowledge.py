"""Knowledge injection and editing: teach a fact through one direction, then measure both.

``gapeval knowledge inject [SPEC]`` teaches new entities (an invented name with a definite look) through
understanding-only data, generation-only data, or both; ``gapeval knowledge edit [SPEC]`` changes the
look of entities the model already knows, the same three ways. Every arm, and the untouched baseline, is
evaluated as an ordinary run on one evaluation suite written next to the results, so ``score``, the
report and the MIRT gap work on each run unchanged. The analysis then gives, per arm, probe (the new
knowledge, its generalisations, unrelated items) and evaluated direction:

- the accuracy and its change from the baseline, with a percentile interval from a two-stage bootstrap
  (entities with replacement, then items within each entity), the same resamples for every cell;
- a two-sided bootstrap p-value for "no change", and for the direction an arm did not train, the verdict
  on transfer: ``transfer`` (the interval is above 0), ``interference`` (below 0), else ``none detected``.

A spec is YAML (see ``experiments/specs/*.yaml``), validated field by field; its SHA-256 over the
normalised content is written into every checkpoint, run label and result file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.files import output_folder
from gapeval.images import safe_join, verify_image
from gapeval.items import Direction
from gapeval.report import figures
from gapeval.scoring.joint import item_scores
from gapeval.specfile import load_spec_file
from gapeval.suites.base import Suite
from gapeval.suites.jsonl import load_jsonl
from gapeval.suites.shapes import spec_to_item, tasks, world

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
    seed: int = Field(0, ge=0, le=2**31 - 1)
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
    seeds: list[Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [0], min_length=1, max_length=32
    )
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


# -- training data ---------------------------------------------------------------------------------------


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


# -- the evaluation suite --------------------------------------------------------------------------------


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


# -- analysis --------------------------------------------------------------------------------------------


class Cell(BaseModel):
    """One arm's accuracy on one probe in one direction, against the baseline.

    Attributes:
        arm: ``baseline``, ``und``, ``gen`` or ``both`` (the direction(s) trained).
        probe: The item set (``target``/``efficacy``, ``generalisation``, ``locality``).
        direction: The evaluated direction.
        n: Items decided in this direction for this arm and the baseline.
        acc: Mean item score (over items, seeds and samples).
        delta: ``acc`` minus the baseline's on the same items.
        low, high: The 95% percentile interval of ``delta`` (two-stage bootstrap).
        p: Two-sided bootstrap p-value of ``delta == 0``.
        trained: Whether this arm trained this direction.
        verdict: For a direction the arm did not train, on the taught knowledge: ``transfer``,
            ``interference`` or ``none detected``; empty otherwise.

    """

    arm: str
    probe: str
    direction: str
    n: int
    acc: float | None
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    trained: bool = False
    verdict: str = ""


def arm_scores(per_seed: Sequence[dict[tuple[str, Direction], float]]) -> dict[tuple[str, Direction], float]:
    """Item scores averaged over an arm's seeds (items decided in every seed)."""
    keys = set.intersection(*(set(s) for s in per_seed))
    return {k: float(np.mean([s[k] for s in per_seed])) for k in keys}


def analyse(
    scores: dict[str, dict[tuple[str, Direction], float]],
    probes: dict[str, tuple[str, str]],
    experiment: str,
    n_boot: int,
    seed: int,
) -> list[Cell]:
    """Every (arm, probe, direction) cell, with bootstrap intervals for the change from the baseline.

    The bootstrap draws groups (entities) with replacement, then items within each drawn group; one
    set of resamples serves every arm and direction of a probe, so cells are comparable.
    """
    rng = np.random.default_rng(seed)
    base = scores["baseline"]
    cells: list[Cell] = []
    for probe in PROBES[experiment]:
        ids = sorted(i for i, (p, _) in probes.items() if p == probe)
        if not ids:
            continue
        groups: dict[str, list[int]] = {}
        for k, i in enumerate(ids):
            groups.setdefault(probes[i][1], []).append(k)
        members = list(groups.values())
        draws = []
        for _ in range(n_boot):
            picked = rng.integers(len(members), size=len(members))
            draws.append(np.concatenate([np.asarray(members[g])[rng.integers(len(members[g]),
                                         size=len(members[g]))] for g in picked]))  # fmt: skip
        for direction in (Direction.UND, Direction.GEN):
            b = np.array([base.get((i, direction), np.nan) for i in ids])
            for arm, sc in scores.items():
                a = np.array([sc.get((i, direction), np.nan) for i in ids])
                both = ~np.isnan(a) & ~np.isnan(b)
                trained = arm != "baseline" and direction.value in ARM_DIRECTIONS[arm]
                cell = Cell(arm=arm, probe=probe, direction=direction.value, n=int(both.sum()),
                            acc=float(a[both].mean()) if both.any() else None, trained=trained)  # fmt: skip
                if arm != "baseline" and both.any():
                    d = np.where(both, a - b, np.nan)
                    cell.delta = float(np.nanmean(d))
                    if n_boot:
                        boots = np.array([np.nanmean(d[idx]) if both[idx].any() else np.nan for idx in draws])
                        boots = boots[~np.isnan(boots)]
                        cell.low, cell.high = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
                        cell.p = float(min(1.0, 2 * min(np.mean(boots <= 0), np.mean(boots >= 0))))
                    if probe == PROBES[experiment][0] and not trained and cell.low is not None:
                        cell.verdict = _verdict(cell.low, cell.high)
                cells.append(cell)
    return cells


def _verdict(low: float, high: float | None) -> str:
    if low > 0:
        return "transfer"
    return "interference" if high is not None and high < 0 else "none detected"


# -- the experiment --------------------------------------------------------------------------------------


class ArmRun(BaseModel):
    """One evaluation run of the experiment.

    Attributes:
        arm: ``baseline`` or the trained direction(s).
        seed: The training seed (None for the baseline).
        model: The model spec evaluated.
        model_options: Its adapter options.
        run: The run directory.
        train: Training record (steps, seconds, mean loss per direction at the start and the end).

    """

    arm: str
    seed: int | None
    model: str
    model_options: dict[str, str]
    run: str
    train: dict[str, Any] = Field(default_factory=dict)


class KnowledgeResult(BaseModel):
    """What an experiment measured, and where it wrote it.

    Attributes:
        experiment: ``inject`` or ``edit``.
        spec: The normalised spec.
        spec_hash: Its SHA-256.
        runs: Every evaluation run.
        cells: The analysis (see :class:`Cell`).
        seconds: This call's wall time of training (``train``), evaluation (``eval``) and everything
            (``total``), and the arms' training time as recorded when each was trained (``arms``: a
            rerun that reuses its arms trains in about 0 s, but still reports what training took).
        files: The result files.

    """

    experiment: str
    spec: dict[str, Any]
    spec_hash: str
    runs: list[ArmRun]
    cells: list[Cell]
    seconds: dict[str, float]
    files: list[str] = Field(default_factory=list)

    def cell(self, arm: str, probe: str, direction: str) -> Cell:
        """The cell for ``arm``, ``probe`` and ``direction``."""
        return next(c for c in self.cells if (c.arm, c.probe, c.direction) == (arm, probe, direction))


def run_experiment(
    experiment: Experiment,
    spec_path: str | Path | None = None,
    *,
    out: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    report: bool = True,
) -> KnowledgeResult:
    """Train every arm, evaluate it and the baseline as ordinary runs, and analyse.

    A second call with the same spec and folder reuses what is there: checkpoints whose recorded spec
    hash matches are not retrained, and finished runs are not rerun.

    Args:
        experiment: ``inject`` or ``edit``.
        spec_path: A spec file (default: the built-in spec of the experiment).
        out: The experiment folder (default ``knowledge-EXPERIMENT``).
        progress: Called with a line as each stage finishes.
        report: Also write the HTML report over every run.

    """
    from gapeval.experiments.runners import runner_for

    spec, file = load_spec(spec_path, experiment)
    digest = spec.digest()
    # Everything a spec points at is checked before anything is written.
    user_suite = None
    if spec.data.eval:
        user_suite = load_jsonl(safe_join(file.parent, spec.data.eval, file=file, field="data.eval"))
        probes_of(user_suite, experiment)
    if spec.data.train:
        load_examples(safe_join(file.parent, spec.data.train, file=file, field="data.train"))
    folder = Path(out) if out is not None else Path(f"knowledge-{experiment}")
    try:
        runner = runner_for(spec, folder / "train", digest)
    except GapevalError as exc:  # the spec's model field: name the spec
        raise GapevalError(exc.message, file=exc.file or file, field=exc.field) from None
    output_folder(folder)
    (folder / "spec.json").write_text(
        json.dumps({"spec_hash": digest, **spec.model_dump(mode="json")}, indent=2)
    )
    say = progress or (lambda _: None)
    t0 = time.perf_counter()
    suite = user_suite or load_jsonl(write_eval_suite(spec, folder / "eval"))
    probes = probes_of(suite, experiment)
    words = [f.name for f in spec.facts]
    base_model, base_opts = runner.baseline(words)
    runs = [ArmRun(arm="baseline", seed=None, model=base_model, model_options=base_opts, run="")]
    train_s = 0.0
    for arm in spec.arms:
        for seed in spec.seeds:
            t = time.perf_counter()
            sampler = Sampler(spec, arm, seed, file.parent)
            model, opts, record = runner.train(arm, seed, sampler)
            train_s += time.perf_counter() - t
            runs.append(ArmRun(arm=arm, seed=seed, model=model, model_options=opts, run="", train=record))
            say(f"trained {arm} (seed {seed}) in {record.get('seconds', 0):.0f} s: {_losses(record)}")
    t_eval = time.perf_counter()
    per_arm: dict[str, list[dict[tuple[str, Direction], float]]] = {}
    for r in runs:
        name = r.arm if r.seed is None else f"{r.arm}-s{r.seed}"
        res = api.run(suite, r.model, out=folder / "runs" / name, seed=spec.eval.seed,
                      model_options=r.model_options, label=f"{spec.name} {name} [{digest[:8]}]")  # fmt: skip
        r.run = str(res.path)
        (records,) = api.read_runs([res.path])
        per_arm.setdefault(r.arm, []).append(item_scores(records, api.resolve_judges(records.manifest, None)))
        say(f"evaluated {name}")
    eval_s = time.perf_counter() - t_eval
    scores = {arm: arm_scores(s) for arm, s in per_arm.items()}
    cells = analyse(scores, probes, experiment, spec.eval.n_boot, spec.eval.seed)
    result = KnowledgeResult(experiment=experiment, spec=spec.model_dump(mode="json"), spec_hash=digest,
                             runs=runs, cells=cells, seconds={})  # fmt: skip
    result.files = [str(f) for f in _write(folder, result)]
    if report:
        site = api.report_site([r.run for r in runs], out=folder / "report", fragility_n=0, n_boot=200,
                               extra_charts=[folder / "knowledge.svg"], suite=suite)  # fmt: skip
        result.files.append(str(site.index))
    result.seconds = {"train": round(train_s, 1), "eval": round(eval_s, 1),
                      "arms": round(sum(float(r.train.get("seconds", 0.0)) for r in runs), 1),
                      "total": round(time.perf_counter() - t0, 1)}  # fmt: skip
    (folder / "knowledge.json").write_text(result.model_dump_json(indent=2))
    return result


def _losses(record: dict[str, Any]) -> str:
    parts = [f"{d} loss {v[0]:.3f} -> {v[1]:.3f}" for d, v in record.get("loss", {}).items()]
    return ", ".join(parts) or "no loss recorded"


def _write(folder: Path, result: KnowledgeResult) -> list[Path]:
    table = folder / "knowledge.csv"
    fields = ["arm", "probe", "direction", "n", "acc", "delta", "low", "high", "p", "trained", "verdict"]
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["spec_hash", *fields])
        for c in result.cells:
            w.writerow([result.spec_hash, *(getattr(c, f) for f in fields)])
    (folder / "knowledge.json").write_text(result.model_dump_json(indent=2))
    arms = list(dict.fromkeys(c.arm for c in result.cells))
    chart = figures.knowledge_bars(
        arms,
        list(PROBES[result.experiment]),
        {(c.arm, c.probe, c.direction): (c.acc, c.low, c.high, c.delta) for c in result.cells},
        f"Knowledge {result.experiment}: accuracy after training each direction",
        folder,
    )
    return [table, folder / "knowledge.json", folder / chart, folder / chart.replace(".svg", ".png")]
