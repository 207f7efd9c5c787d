"""The mechanisms study: the paper's three explanations of the gap, tested on architecture variants.

``gapeval study mechanisms [SPEC]`` trains (or reuses) each variant of the built-in model (``shared``,
``mot``, ``towers``; :mod:`gapeval.toy.model`) with the shipped recipe, then measures on each:

- the gap: the identified MIRT gap of the final checkpoint on the study's suite, with its interval;
- the lag (asynchronous convergence): ``gapeval curve`` over the variant's checkpoint series;
- transfer (disjoint knowledge): ``gapeval knowledge inject`` and ``edit``, the change in the direction an
  arm did not train, with its interval;
- gradient overlap (disjoint parameters): the cosine of the two directions' gradients on the same facts
  and the overlap of their top parameters;
- representation transfer (surface unification): the best layer's accuracy of a probe trained on the
  understanding path and read on the generation path.

Everything is an ordinary result of its own command in the study folder (runs, curves, experiments), so
each can be opened, scored and reported on its own; ``study.json`` / ``study.csv`` hold the table and
``index.html`` the page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gapeval.errors import GapevalError
from gapeval.files import output_folder
from gapeval.report.render import HTML_HELPERS, to_csv
from gapeval.report.tables import Column, Row, Table, number
from gapeval.specfile import Seed, load_spec_file

Variant = Literal["shared", "mot", "towers"]
VARIANTS: tuple[Variant, ...] = ("shared", "mot", "towers")


class StudyTraining(BaseModel):
    """How each variant is trained from scratch (default: the shipped model's recipe).

    Attributes:
        steps: Optimiser steps.
        batch_size: Sequences per step.
        d_model: Width.
        n_layers: Blocks (per tower for ``towers``).
        seed: The seed of weights and data (the same for every variant).
        checkpoint_every: Steps between the checkpoints the curve reads.
        eval_items: Held-out items logged at each checkpoint (0: none).

    """

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(8000, ge=2, le=1_000_000)
    batch_size: int = Field(96, ge=1, le=4096)
    d_model: int = Field(128, ge=8, le=4096)
    n_layers: int = Field(4, ge=1, le=64)
    seed: Seed = 0
    checkpoint_every: int = Field(800, ge=1)
    eval_items: int = Field(40, ge=0, le=10_000)

    @model_validator(mode="after")
    def _series(self) -> StudyTraining:
        if self.steps // self.checkpoint_every < 2:
            raise ValueError("the lag needs at least two checkpoints: checkpoint_every at most steps / 2")
        return self


class StudySpec(BaseModel):
    """A mechanisms study.

    Attributes:
        name: A name for tables and the page.
        variants: The architectures studied.
        variants_dir: Where trained variants live (``DIR/ARCH/``; relative to the spec); missing ones are
            trained there. Default: ``variants/`` in the study folder.
        train: How each variant is trained.
        suite: The suite of the gap and the curve.
        samples_gen: Images per generation item in the gap and the curve (default: the suite's).
        fraction: The share of final accuracy at which a direction counts as trained (the lag).
        inject: The injection spec run on each variant (default: the built-in one); its ``model`` is
            replaced by the variant.
        edit: The editing spec (likewise).
        knowledge_seeds: Training seeds of every knowledge arm (replaces the specs' own).
        per_entity: Examples per entity and direction of the representation probe.
        examples: Examples per direction of the overlap probe.
        topk: The top percentage of parameters the overlap probe compares.
        n_boot: Resamples of every interval.

    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("mechanisms", pattern=r"^[A-Za-z0-9._-]{1,60}$")
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS), min_length=1)
    variants_dir: str | None = None
    train: StudyTraining = Field(default_factory=StudyTraining)
    suite: str = "shapes-v1"
    samples_gen: int | None = Field(None, ge=1, le=64)
    fraction: float = Field(0.9, gt=0, le=1)
    inject: str | None = None
    edit: str | None = None
    knowledge_seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=8)
    per_entity: int = Field(16, ge=2, le=1000)
    examples: int = Field(32, ge=1, le=1000)
    topk: float = Field(1.0, gt=0, le=100)
    n_boot: int = Field(200, ge=0, le=100_000)

    @model_validator(mode="after")
    def _distinct(self) -> StudySpec:
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants may not repeat")
        return self


def builtin_study() -> Path:
    """The built-in study spec (``gapeval study mechanisms`` with no argument)."""
    return Path(str(resources.files("gapeval.experiments") / "specs" / "mechanisms.yaml"))


class Estimate(BaseModel):
    """A figure with its 95% interval.

    Attributes:
        value: The estimate (None where it could not be measured).
        low, high: The interval (None without one).

    """

    value: float | None = None
    low: float | None = None
    high: float | None = None


class VariantResult(BaseModel):
    """What the study measured on one variant.

    Attributes:
        variant: The architecture.
        checkpoint: Its final checkpoint.
        params: Parameters.
        train_seconds: Training time recorded in its log (evaluation excluded; a reused variant reports
            what its training took).
        gap: The identified gap (und - gen, logits) of the final checkpoint.
        und, gen: Final accuracy per direction.
        lag: Steps by which understanding reached ``fraction`` of its final accuracy before generation.
        inject_und_to_gen, inject_gen_to_und: Injection: the change in the untrained direction on the
            taught facts (accuracy share) when training understanding only / generation only.
        edit_und_to_gen, edit_gen_to_und: The same for edits (efficacy).
        grad_cosine: Cosine of the two directions' gradients over the whole model.
        grad_overlap: Jaccard overlap of their top-k parameters.
        rep_transfer: The best layer's understanding-to-generation probe accuracy.
        rep_layer: That layer (0 the embeddings).
        rep_chance: The probe's chance accuracy.
        measure_seconds: Time the measurements took when they were made (a rerun that reuses them
            reports that time, not its own).
        folders: Where each part's full result is.

    """

    variant: str
    checkpoint: str
    params: int
    train_seconds: float | None
    gap: Estimate
    und: float | None
    gen: float | None
    lag: Estimate
    inject_und_to_gen: Estimate
    inject_gen_to_und: Estimate
    edit_und_to_gen: Estimate
    edit_gen_to_und: Estimate
    grad_cosine: float | None
    grad_overlap: float | None
    rep_transfer: Estimate
    rep_layer: int | None
    rep_chance: float
    measure_seconds: float = 0.0
    folders: dict[str, str] = Field(default_factory=dict)


#: The study table's columns.
STUDY_COLUMNS = [
    Column(key="variant", title="variant", kind="text"),
    Column(key="params", title="params", kind="int"),
    Column(key="train_seconds", title="train s", kind="int", help="training time from its log"),
    Column(key="measure_seconds", title="measure s", kind="int", help="time its measurements took"),
    Column(key="und", title="Und", scale=100),
    Column(key="gen", title="Gen", scale=100),
    Column(key="gap", title="gap", digits=2, signed=True, help="identified gap und - gen (logits)"),
    Column(key="gap_ci", title="95% CI", kind="interval", digits=2, signed=True),
    Column(key="lag", title="lag (steps)", kind="int", signed=True, help="understanding first: positive"),
    Column(key="lag_ci", title="95% CI", kind="interval", digits=0, signed=True),
    Column(
        key="inject_und_to_gen",
        title="inject und->gen",
        scale=100,
        signed=True,
        help="change in generation on the taught names after training understanding only",
    ),
    Column(key="inject_und_to_gen_ci", title="95% CI", kind="interval", scale=100, signed=True),
    Column(key="inject_gen_to_und", title="inject gen->und", scale=100, signed=True),
    Column(key="inject_gen_to_und_ci", title="95% CI", kind="interval", scale=100, signed=True),
    Column(key="edit_und_to_gen", title="edit und->gen", scale=100, signed=True),
    Column(key="edit_und_to_gen_ci", title="95% CI", kind="interval", scale=100, signed=True),
    Column(key="edit_gen_to_und", title="edit gen->und", scale=100, signed=True),
    Column(key="edit_gen_to_und_ci", title="95% CI", kind="interval", scale=100, signed=True),
    Column(key="grad_cosine", title="grad cosine", digits=3, signed=True),
    Column(key="grad_overlap", title="top-k overlap", digits=3),
    Column(key="rep_transfer", title="rep und->gen", digits=3, help="best layer; chance in the caption"),
    Column(key="rep_ci", title="95% CI", kind="interval", digits=2),
    Column(key="rep_layer", title="layer", kind="int"),
]

_ESTIMATES = ("gap", "lag", "inject_und_to_gen", "inject_gen_to_und", "edit_und_to_gen", "edit_gen_to_und")


class StudyResult(BaseModel):
    """A mechanisms study's result.

    Attributes:
        spec: The normalised spec.
        variants: Per variant.
        seconds: Wall time of this call: training (``train``), the measurements (``study``), all.
        files: The result files.

    """

    spec: dict[str, Any]
    variants: list[VariantResult]
    seconds: dict[str, float]
    files: list[str] = Field(default_factory=list)

    def summary(self) -> Table:
        """The figures turned round: a row per measure, a column per variant, value and interval together.

        What fits a terminal and a page; :meth:`table` has a column per figure (``study.csv``).
        """
        wide = self.table()
        cols = {c.key: c for c in wide.columns}
        measures = [("Und", "und", None), ("Gen", "gen", None), ("gap (logits)", "gap", "gap_ci"),
                    ("lag (steps, und first +)", "lag", "lag_ci"),
                    ("inject: und -> gen", "inject_und_to_gen", "inject_und_to_gen_ci"),
                    ("inject: gen -> und", "inject_gen_to_und", "inject_gen_to_und_ci"),
                    ("edit: und -> gen", "edit_und_to_gen", "edit_und_to_gen_ci"),
                    ("edit: gen -> und", "edit_gen_to_und", "edit_gen_to_und_ci"),
                    ("gradient cosine", "grad_cosine", None), ("top-k overlap", "grad_overlap", None),
                    ("representation und -> gen", "rep_transfer", "rep_ci"),
                    ("  at layer", "rep_layer", None),
                    ("parameters", "params", None), ("training (s)", "train_seconds", None),
                    ("measurements (s)", "measure_seconds", None)]  # fmt: skip
        rows = []
        for title, key, ci in measures:
            values: dict[str, Any] = {"measure": title}
            for row in wide.rows:
                text = number(row.values.get(key), cols[key])
                if ci is not None and row.values.get(ci) is not None:
                    text += " " + number(row.values[ci], cols[ci])
                values[str(row.values["variant"])] = text
            rows.append(
                Row(values=values, section=key in ("gap", "inject_und_to_gen", "grad_cosine", "params"))
            )
        columns = [Column(key="measure", title="measure", kind="text")]
        columns += [Column(key=v.variant, title=v.variant, kind="text") for v in self.variants]
        return Table(name="mechanisms-summary", title=wide.title, columns=columns, rows=rows,
                     caption=wide.caption + " Transfer and accuracies x100; intervals 95%.")  # fmt: skip

    def table(self) -> Table:
        """Variant x (gap, lag, transfer both ways for injection and edits, overlap, representations)."""
        rows = []
        for v in self.variants:
            values: dict[str, Any] = v.model_dump(exclude={"folders", *_ESTIMATES, "rep_transfer"})
            for key in _ESTIMATES:
                est: Estimate = getattr(v, key)
                values[key] = est.value
                values[f"{key}_ci"] = (est.low, est.high) if est.low is not None else None
            values["rep_transfer"] = v.rep_transfer.value
            values["rep_ci"] = (
                (v.rep_transfer.low, v.rep_transfer.high) if v.rep_transfer.low is not None else None
            )
            rows.append(Row(values=values))
        chance = ", ".join(sorted({f"{v.rep_chance:.3f}" for v in self.variants}))
        return Table(
            name="mechanisms",
            title=f"Why the gap: {self.spec['name']} ({len(self.variants)} variants)",
            columns=list(STUDY_COLUMNS),
            rows=rows,
            caption="Und/Gen: final accuracy x100 on "
            f"{self.spec['suite']}; gap: identified MIRT gap of the final checkpoint; lag: steps by which "
            f"understanding reaches {self.spec['fraction']:.0%} of its final accuracy before generation; "
            "transfer: change x100 in the direction an arm did not train, on the taught facts (edits: "
            "efficacy); grad: the two directions' gradients on the same facts; rep: a linear probe trained "
            f"on the understanding path, read on the generation path (best layer; chance {chance}).",
        )


def _estimate(value: float | None, low: float | None = None, high: float | None = None) -> Estimate:
    return Estimate(value=value, low=low, high=high)


def _train_record(folder: Path) -> dict[str, Any] | None:
    log = folder / "train_log.jsonl"
    if not log.is_file():
        return None
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return lines[-1] if lines else None


def ensure_variant(
    folder: Path, arch: str, training: StudyTraining, progress: Callable[[str], None]
) -> tuple[Path, dict[str, Any]]:
    """The variant's final checkpoint and its log's last record, training it unless the folder has it.

    The record carries ``elapsed_s`` and ``params``; a finished training of the same recipe is reused.

    Raises:
        GapevalError: The folder holds a training of another recipe or architecture.

    """
    from gapeval.toy.train import TrainConfig, train_recipe

    # The recipe, without the held-out evaluation's size (it does not change the weights).
    settings = training.model_dump(exclude={"eval_items"})
    want = {k: v for k, v in asdict(TrainConfig(**settings, arch=arch)).items() if k != "eval_items"}
    last = _train_record(folder)
    if last is not None:
        had = {k: v for k, v in last.get("train", {}).items() if k != "eval_items"}
        if had != want:
            diff = next((k for k in want if had.get(k) != want[k]), "train")
            raise GapevalError(f"holds a training of another recipe ({diff}: {had.get(diff)!r} != "
                               f"{want[diff]!r}); pick another variants_dir", file=folder,
                               field="variants_dir")  # fmt: skip
        if last.get("step") == training.steps and (folder / "final.pt").is_file():
            progress(f"{arch}: reusing {folder / 'final.pt'} (trained in {last.get('elapsed_s')} s)")
            return folder / "final.pt", last
    progress(f"{arch}: training {training.steps} steps into {folder}")
    final = train_recipe(folder, eval_items=training.eval_items, arch=arch, **settings)
    return final, _train_record(folder) or {}


def _knowledge(
    experiment: Literal["inject", "edit"],
    spec: StudySpec,
    root: Path,
    model: str,
    out: Path,
    progress: Callable[[str], None],
) -> tuple[Estimate, Estimate]:
    from gapeval.experiments.knowledge import run_experiment

    path = getattr(spec, experiment)
    res = run_experiment(experiment, root / path if path else None, out=out, report=False, progress=progress,
                         overrides={"model": model, "seeds": spec.knowledge_seeds})  # fmt: skip
    first = res.cells[0].probe if res.cells else ""
    out_est = []
    for arm, evaluated in (("und", "gen"), ("gen", "und")):
        try:
            c = res.cell(arm, first, evaluated)
        except StopIteration:
            out_est.append(Estimate())
            continue
        out_est.append(_estimate(c.delta, c.low, c.high))
    return out_est[0], out_est[1]


def _measured(here: Path, seconds: float) -> float:
    """The measurement time of a variant: this call's, unless an earlier call measured more of it."""
    stamp = here / "measured.json"
    before = float(json.loads(stamp.read_text())["seconds"]) if stamp.is_file() else 0.0
    if seconds > before:
        stamp.write_text(json.dumps({"seconds": round(seconds, 1)}))
    return round(max(seconds, before), 1)


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: say(f"{prefix}: {line}")


def load_study(path: str | Path | None) -> tuple[StudySpec, Path]:
    """Read and validate a study spec (the built-in one when ``path`` is None)."""
    file = Path(path) if path is not None else builtin_study()
    return load_spec_file(file, StudySpec, "study spec"), file


def run_study(
    spec_path: str | Path | None = None,
    *,
    out: str | Path = "study-mechanisms",
    progress: Callable[[str], None] | None = None,
) -> StudyResult:
    """Train or reuse every variant, measure it, and write the table, figures and page.

    A second call reuses what is there: trained variants, finished runs and trained knowledge arms.
    """
    from gapeval.experiments.curve import curve as measure_curve
    from gapeval.experiments.probes import facts_overlap, probe_representations, spec_entities
    from gapeval.suites import load_suite

    spec, file = load_study(spec_path)
    root = file.parent
    say = progress or (lambda _: None)
    # What the spec points at is checked before anything is written.
    load_suite(spec.suite)
    for experiment in ("inject", "edit"):
        path = getattr(spec, experiment)
        if path:
            from gapeval.experiments.knowledge_spec import load_spec

            load_spec(root / path, experiment)
    folder = output_folder(out)
    # Paths in a study spec are the user's own (relative to the spec, or absolute).
    variants_root = root / spec.variants_dir if spec.variants_dir else folder / "variants"
    (folder / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2))
    t0 = time.perf_counter()
    train_s = 0.0
    results: list[VariantResult] = []
    curves: dict[str, list[dict[str, Any]]] = {}
    layers: dict[str, list[dict[str, Any]]] = {}
    for arch in spec.variants:
        t = time.perf_counter()
        final, trained = ensure_variant(variants_root / arch, arch, spec.train, say)
        train_s += time.perf_counter() - t
        model = f"toy:{final}"
        here = folder / arch
        t_measure = time.perf_counter()
        curve = measure_curve([final.parent], suite=spec.suite, out=here / "curve", fraction=spec.fraction,
                          n_boot=spec.n_boot, samples_gen=spec.samples_gen,
                          progress=_prefixed(say, f"{arch} curve"))  # fmt: skip
        last = curve.points[-1]
        lag = curve.lag
        say(f"{arch}: gap {last.gap}, lag {lag.lag if lag else None}")
        inject = _knowledge(
            "inject", spec, root, model, here / "knowledge-inject", _prefixed(say, f"{arch} inject")
        )
        edit = _knowledge("edit", spec, root, model, here / "knowledge-edit", _prefixed(say, f"{arch} edit"))
        facts = root / spec.inject if spec.inject else None
        overlap = facts_overlap(model, facts, examples=spec.examples, topk=spec.topk)
        reps = probe_representations(model, spec_entities(facts), per_entity=spec.per_entity)
        (here / "overlap.json").write_text(overlap.model_dump_json(indent=2))
        (here / "representations.json").write_text(reps.model_dump_json(indent=2))
        best = max(reps.layers, key=lambda r: r.transfer)
        measured = _measured(here, time.perf_counter() - t_measure)
        curves[arch] = [p.model_dump() for p in curve.points]
        layers[arch] = [r.model_dump() for r in reps.layers]
        results.append(
            VariantResult(
                variant=arch,
                checkpoint=str(final),
                params=int(trained.get("params", 0)),
                train_seconds=trained.get("elapsed_s"),
                gap=_estimate(last.gap, last.gap_low, last.gap_high),
                und=last.und,
                gen=last.gen,
                lag=_estimate(lag.lag, lag.low, lag.high) if lag else Estimate(),
                inject_und_to_gen=inject[0],
                inject_gen_to_und=inject[1],
                edit_und_to_gen=edit[0],
                edit_gen_to_und=edit[1],
                grad_cosine=overlap.overall.cosine,
                grad_overlap=overlap.overall.overlap,
                rep_transfer=_estimate(best.transfer, best.transfer_low, best.transfer_high),
                rep_layer=best.layer,
                rep_chance=reps.chance,
                measure_seconds=measured,
                folders={
                    "curve": str(here / "curve"),
                    "inject": str(here / "knowledge-inject"),
                    "edit": str(here / "knowledge-edit"),
                    "probes": str(here),
                },
            )
        )
        say(f"{arch}: done")
    total = time.perf_counter() - t0
    result = StudyResult(spec=spec.model_dump(mode="json"), variants=results,
                         seconds={"train": round(train_s, 1), "study": round(total - train_s, 1),
                                  "total": round(total, 1)})  # fmt: skip
    result.files = [str(f) for f in write_study(folder, result, curves, layers)]
    (folder / "study.json").write_text(result.model_dump_json(indent=2))
    return result


def write_study(
    folder: Path,
    result: StudyResult,
    curves: dict[str, list[dict[str, Any]]],
    layers: dict[str, list[dict[str, Any]]],
) -> list[Path]:
    """``study.csv``, ``study.json``, the figures and ``index.html`` (the table and its figures).

    ``curves``: each variant's curve points; ``layers``: its representation probe's layers.
    """
    from gapeval.report import figures
    from gapeval.report.site import template_env

    table = result.table()
    csv_file = folder / "study.csv"
    csv_file.write_text(to_csv(table), encoding="utf-8")
    figs = folder / "figures"
    figs.mkdir(exist_ok=True)
    drawn = [
        figures.mechanism_curves(curves, figs),
        figures.mechanism_transfer(
            [v.variant for v in result.variants],
            {k: [getattr(v, k).model_dump() for v in result.variants] for k in _ESTIMATES[2:]},
            figs,
        ),
        figures.mechanism_layers(layers, result.variants[0].rep_chance, figs),
    ]
    assets = folder / "assets"
    assets.mkdir(exist_ok=True)
    static = resources.files("gapeval.report") / "static"
    (assets / "style.css").write_text((static / "style.css").read_text(encoding="utf-8"), encoding="utf-8")
    page = folder / "index.html"
    context = {"summary": result.summary(), "table": table, "charts": drawn, "result": result}
    html = template_env().get_template("study.html.j2").render(**context, **HTML_HELPERS)
    page.write_text(html, encoding="utf-8")
    return [csv_file, folder / "study.json", page, *(figs / d for d in drawn)]
