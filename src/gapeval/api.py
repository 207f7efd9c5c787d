"""The library facade: one verb per command, each returning a typed result that the renderers draw.

The CLI resolves its options and makes one call here; a notebook makes the same call and gets the same
numbers, tables (:mod:`gapeval.report.tables`) and files:

>>> from gapeval import api
>>> res = api.evaluate("shapes-v1-mini", "toy")          # doctest: +SKIP
>>> scores = api.score([res.run.path], method="both")     # doctest: +SKIP
>>> api.report_site([res.run.path])                      # doctest: +SKIP

The evaluation verbs live in :mod:`gapeval.pipeline` (the experiments build on them); the verbs of the
experiments, the built-in model and the listings are defined here, importing their packages lazily so
that ``import gapeval`` stays light and optional extras stay optional.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gapeval.errors import GapevalError
from gapeval.pipeline import (
    DemoResult,
    EvaluateResult,
    RunResult,
    ScoreResult,
    default_run_dir,
    demo,
    evaluate,
    export,
    judge,
    platform_note,
    read_runs,
    report,
    report_site,
    resolve_judges,
    resolve_run,
    run,
    score,
    slug,
    suite_of,
    writable_run,
)

if TYPE_CHECKING:
    from gapeval.experiments.curve import CurveResult
    from gapeval.experiments.knowledge import KnowledgeResult
    from gapeval.experiments.study import StudyResult
    from gapeval.judges.agreement import Agreement, Reliability
    from gapeval.records import RunRecords
    from gapeval.scoring.correlate import Correlation
    from gapeval.scoring.judge_error import Audit
    from gapeval.scoring.reference_gap import Fragility, ReferenceGap
    from gapeval.scoring.reference_platform import PlatformCheck
    from gapeval.suites.base import Suite
    from gapeval.sweep import SweepResult

__all__ = [
    "AgreementResult",
    "AuditResult",
    "DemoResult",
    "EvaluateResult",
    "ReferenceGapResult",
    "RunResult",
    "ScoreResult",
    "agreement",
    "audit",
    "correlate",
    "curve",
    "default_run_dir",
    "demo",
    "evaluate",
    "export",
    "fetch",
    "judge",
    "knowledge",
    "listing",
    "platform_check",
    "platform_note",
    "read_runs",
    "reference_gap",
    "report",
    "report_site",
    "resolve_judges",
    "resolve_run",
    "run",
    "sample",
    "score",
    "serve",
    "slug",
    "suite_of",
    "suites",
    "sweep",
    "train_toy",
    "validate",
    "writable_run",
]


def correlate(
    scores: str | Path,
    *,
    runs: Sequence[str | Path] = (),
    responses: str | Path | None = None,
    n_boot: int = 2000,
) -> list[Correlation]:
    """Relate models' gaps to external benchmark scores (Spearman, Kendall, bootstrap CIs over models).

    Args:
        scores: A CSV with a ``model`` column and one column per external score (and, when neither
            ``runs`` nor ``responses`` is given, a ``gap`` column).
        runs: Runs to fit the identified gaps from (one model each).
        responses: A tidy response CSV to fit the gaps from.
        n_boot: Bootstrap resamples over models.

    """
    from gapeval.scoring import responses as resp
    from gapeval.scoring.correlate import correlate as relate
    from gapeval.scoring.correlate import read_scores
    from gapeval.scoring.mirt import fit

    columns, table = read_scores(scores)
    if runs or responses is not None:
        data = resp.read_csv(responses) if responses is not None else resp.from_records(read_runs(runs))
        res = fit(data, with_se=False)
        gaps = {m: float(g) for m, g in zip(data.models, res.gap, strict=True)}
    elif "gap" in columns:
        gaps = {m: v["gap"] for m, v in table.items() if "gap" in v}
    else:
        raise GapevalError("no gaps: give --run/--responses or a 'gap' column", file=scores, field="gap")
    return relate(gaps, table, columns, n_boot=n_boot, source=scores)


@dataclass
class ReferenceGapResult:
    """What :func:`reference_gap` computed and wrote.

    Attributes:
        output: The ``<stem>_gapres.json`` written beside the input, as the authors' scorer does.
        coupling: ``categories`` (the released scorer) or ``models`` (the appendix reading).
        results: Per model, the Gap Score per row and their mean.
        fragility: Per model, the largest change under 1e-6 input noise (categories coupling only).
        fragility_n: The perturbed refits behind it.
        platform: Whether this machine reproduces the authors' published vectors.

    """

    output: Path
    coupling: str
    results: dict[str, ReferenceGap]
    fragility: dict[str, Fragility]
    fragility_n: int
    platform: str


def reference_gap(
    joint_json: str | Path,
    *,
    coupling: Literal["categories", "models"] = "categories",
    fragility_n: int = 6,
    workers: int = 2,
) -> ReferenceGapResult:
    """The paper-compatible Gap Score of joint tables in the authors' format; writes ``<stem>_gapres.json``.

    Args:
        joint_json: ``{model: [[p11, p10, p01, p00], ...]}``, one row per category.
        coupling: ``categories`` (released scorer: one fit per model) or ``models`` (appendix: one fit
            per row across the models).
        fragility_n: Perturbed refits for each Gap's fragility (0: off; categories coupling only).
        workers: Processes for the fits.

    """
    from gapeval.scoring.reference_gap import (
        fit_many,
        fragility,
        read_authors_input,
        reference_gap_models_coupled,
        write_authors_output,
    )

    if coupling not in ("categories", "models"):
        raise GapevalError(
            f"unknown coupling {coupling!r}; available: categories, models", field="--coupling"
        )
    tables = read_authors_input(joint_json)
    if coupling == "models":
        results = reference_gap_models_coupled(tables)
    else:
        results = dict(zip(tables, fit_many(list(tables.values()), workers=workers), strict=True))
    frag = (
        {m: fragility(tables[m], results[m], n=fragility_n, workers=workers) for m in tables}
        if fragility_n > 0 and coupling == "categories"
        else {}
    )
    path = write_authors_output(joint_json, results)
    return ReferenceGapResult(path, coupling, results, frag, fragility_n if frag else 0, platform_note())


@dataclass
class AuditResult:
    """What :func:`audit` measured, and the file it wrote (``gapeval score --judge-audit FILE`` reads it).

    Attributes:
        audit: Per direction and category, the judge against the truth, and the bias tests.
        path: The audit file.
        unmatched: Labels that name no output of the run (with labels; listed, never guessed).

    """

    audit: Audit
    path: Path
    unmatched: int = 0


def _judged_by(records: RunRecords, spec: str, field: str) -> str:
    """The run's judge id for ``spec``, refused in one line unless that judge has judged the run."""
    judge_id = resolve_judges(records.manifest, [spec])[0]
    if not any(v.judge_id == judge_id for v in records.verdicts):
        raise GapevalError(f"judge {judge_id!r} has not judged this run (gapeval judge RUN -j {spec})",
                           file=Path(records.path), field=field)  # fmt: skip
    return judge_id


def audit(
    run_dir: str | Path,
    *,
    judge: str,
    truth: str,
    out: str | Path | None = None,
    ci: float = 0.95,
) -> AuditResult:
    """How far ``judge`` can be trusted in each direction, against the truth on the same outputs.

    Args:
        run_dir: A run (or bundle) the judge has judged.
        judge: The judge id to audit (``openai:gpt-5-mini`` matches the id the run recorded).
        truth: An exact judge that has judged the run too (``scene`` on the built-in world), or a CSV of
            people's labels: item_id, direction (und/gen), sample, label (pass/fail, 1/0, ...).
        out: The audit file (default ``RUN/audits/JUDGE-vs-TRUTH.json``).
        ci: The level of every interval.

    """
    from gapeval.files import output_file
    from gapeval.judges.agreement import read_output_labels
    from gapeval.scoring import judge_error

    (records,) = read_runs([run_dir])
    path = Path(records.path)
    judge_id = _judged_by(records, judge, "--judge")
    unmatched = 0
    if Path(truth).suffix.lower() == ".csv" or Path(truth).is_file():
        labels = read_output_labels(truth, model=records.manifest.display_name)
        held = {(o.item_id, str(o.direction), o.sample) for o in records.outputs}
        stray = [(k, where) for k, (_, where) in labels.items() if k not in held]
        if len(stray) == len(labels):
            (item, direction, sample), where = stray[0]
            raise GapevalError(f"no label names an output of this run (first: {item!r} {direction} sample "
                               f"{sample})", file=where, field="item_id")  # fmt: skip
        unmatched = len(stray)
        pairs = judge_error.label_pairs(records, judge_id, {k: v for k, (v, _) in labels.items()})
        truth_name = str(truth)
    else:
        truth_name = _judged_by(records, truth, "--truth")
        pairs = judge_error.judge_pairs(records, judge_id, truth_name)
    if not pairs:
        raise GapevalError(f"no output is decided both by {judge_id} and by {truth_name}", file=path,
                           field="--truth")  # fmt: skip
    result = judge_error.audit(pairs, run=str(path), judge=judge_id, truth=truth_name, ci=ci)
    target = (
        Path(out)
        if out is not None
        else path / "audits" / f"{slug(judge_id)}-vs-{slug(Path(truth_name).name)}.json"
    )
    output_file(target).write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return AuditResult(result, target, unmatched)


def audit_world(
    judge: str,
    suite: str = "shapes-v2",
    *,
    out: str | Path | None = None,
    judge_options: Mapping[str, str] | None = None,
    ci: float = 0.95,
    progress: Callable[[str, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> AuditResult:
    """Audit a judge on the built-in world in one call: the truth is free there.

    Runs the built-in model on ``suite`` (one image per item; resumes in ``out``), judges it exactly
    (``scene``, the suite's own judge) and with ``judge``, and audits ``judge`` against ``scene``. On
    ``shapes-v2`` every item carries a rendered reference image of its generation target, so a VLM judge
    sees what the exact judge knows.

    Args:
        judge: The judge to audit (``openai:gpt-5-mini``, or any judge spec).
        suite: A built-in suite (``shapes-v2``, ``shapes-v2-mini``...).
        out: The run directory (default ``runs/audit-SUITE``; the same one resumes and reuses verdicts).
        judge_options: Options of the judge (``base_url``, ``protocol``, ``rubrics``...).
        ci: The level of every interval.
        progress: Called with (direction, count) as outputs are produced.
        notify: Where a slow or failing endpoint's retries are told.

    """
    from gapeval.pipeline import judge as judge_run
    from gapeval.suites.shapes import SHAPES_SUITES

    if suite not in SHAPES_SUITES:
        raise GapevalError(f"the truth is free only on a built-in world ({', '.join(SHAPES_SUITES)})",
                           field="suite")  # fmt: skip
    target = Path(out) if out is not None else Path("runs") / f"audit-{suite}"
    done = run(suite, "toy", out=target, samples_gen=1, progress=progress, notify=notify)
    judge_run(done.path, [judge], options=judge_options, notify=notify)
    return audit(done.path, judge=judge, truth="scene", ci=ci)


@dataclass
class LabelSample:
    """A stratified sample of one run's outputs for people to label, as a report in labelling mode.

    Attributes:
        plan: The strata, what was drawn, and the labels each stratum needs
            (:class:`~gapeval.scoring.judge_error.LabelPlan`).
        index: The report holding just the sampled outputs (open it, label, export the labels CSV).
        sample_csv: The drawn outputs (item_id, direction, sample, category).

    """

    plan: Any
    index: Path
    sample_csv: Path


def label_sample(
    run_dir: str | Path,
    n: int,
    *,
    judge: str | None = None,
    width: float = 0.2,
    ci: float = 0.95,
    seed: int = 0,
    out: str | Path | None = None,
) -> LabelSample:
    """Draw ``n`` outputs of a run for people to label, stratified by direction x category.

    Writes a report holding just those outputs, opening in labelling mode (pass / fail / skip from the
    keyboard, progress kept in the browser, the labels exported as the CSV ``gapeval audit --truth``
    reads), and says how many labels each stratum needs for an interval of ``width``.

    Args:
        run_dir: The run (or bundle).
        n: Outputs to draw.
        judge: Draw only outputs this judge decided (the ones its audit can use); default: all done.
        width: The planned interval's full width.
        ci: The interval's level.
        seed: The draw's seed (the same seed draws the same sample).
        out: The report folder (default ``RUN/audits/labelling``).

    """
    from gapeval.files import output_file
    from gapeval.scoring.judge_error import label_plan

    if n < 1:
        raise GapevalError("draw at least one output", field="--sample")
    if not 0 < width < 1:
        raise GapevalError("the interval's width is between 0 and 1", field="--width")
    (records,) = read_runs([run_dir])
    path = Path(records.path)
    judge_id = _judged_by(records, judge, "--judge") if judge else None
    plan = label_plan(records, n, judge=judge_id, width=width, ci=ci, seed=seed)
    if not plan.sample:
        by = f" decided by {judge_id}" if judge_id else ""
        raise GapevalError(f"the run holds no output to label{by}", file=path, field="--sample")
    target = Path(out) if out is not None else path / "audits" / "labelling"
    site = report_site([path], out=target, fragility_n=0, n_boot=0, only=set(plan.sample))
    categories = {item: cat.value for item, (cat, _) in records.items.items()}
    sample_csv = output_file(target / "sample.csv")
    with sample_csv.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["item_id", "direction", "sample", "category"])
        writer.writerows([i, d, k, categories.get(i, "")] for i, d, k in plan.sample)
    return LabelSample(plan, site.index, sample_csv)


@dataclass
class AgreementResult:
    """Agreement among judges (and people's labels) on one run.

    Attributes:
        raters: The judge ids (and the labels file), in the order given.
        reliability: Every pair per direction (accuracy, kappa, Pearson's r) and Krippendorff's alpha.
        agreement: With exactly two raters, the first against the second in detail: confusion matrix
            and per category.

    """

    raters: list[str]
    reliability: Reliability
    agreement: Agreement | None

    @property
    def judge(self) -> str:
        """The first rater."""
        return self.raters[0]

    @property
    def other(self) -> str:
        """The second rater."""
        return self.raters[1]


def agreement(
    run_dir: str | Path,
    *,
    judges: Sequence[str] = ("rules",),
    labels: str | Path | None = None,
    versus: str | None = None,
    samples: bool = False,
) -> AgreementResult:
    """How far judges agree with each other and with people's labels, per direction, in the paper's terms.

    Args:
        run_dir: A run the judges have judged.
        judges: Judge ids (``openai:gpt-5-mini`` matches the id the run recorded).
        labels: People's labels (CSV: item_id, direction, label), as one more rater.
        versus: One more judge id (the older spelling of a second ``judges`` entry).
        samples: Each judge's independent samples (judged with ``--samples k``) are the raters, over
            outputs: how far a judge agrees with itself.

    """
    from gapeval.judges.agreement import agreement as agree
    from gapeval.judges.agreement import judge_labels, judge_sample_raters, read_labels, reliability
    from gapeval.store import RunStore

    with RunStore.open(resolve_run(run_dir)) as store:
        names = resolve_judges(store.manifest(), [*judges, *([versus] if versus else [])])
        if samples:
            scores = {
                r: s for name in dict.fromkeys(names) for r, s in judge_sample_raters(store, name).items()
            }
        else:
            scores = {name: judge_labels(store, name) for name in dict.fromkeys(names)}
        cats = {k: c.value for k, (c, _) in store.items().items()}
    if labels is not None and samples:
        raise GapevalError("labels rate items, samples rate outputs: give one or the other", field="--labels")
    if labels is not None:
        scores[str(labels)] = read_labels(labels)
    raters = list(scores)
    if len(raters) < 2:
        raise GapevalError(
            "give two raters or more: --judge twice, --vs JUDGE or --labels CSV", field="--labels"
        )
    detail = agree(scores[raters[0]], scores[raters[1]], cats) if len(raters) == 2 and not samples else None
    return AgreementResult(raters, reliability(scores), detail)


def platform_check(*, refresh: bool = False, workers: int = 2) -> PlatformCheck:
    """Fit the authors' published Gap Score vectors here, to see whether this machine reproduces them.

    The outcome is cached in the data home (``platform-check.json``); ``refresh`` fits again.
    """
    from gapeval.scoring.reference_gap import require_torch
    from gapeval.scoring.reference_platform import check_platform
    from gapeval.suites import data_home

    require_torch()  # one clear line when the extra is missing
    return check_platform(data_home() / "platform-check.json", workers=workers, refresh=refresh)


def curve(checkpoints: Sequence[str | Path], **options: Any) -> CurveResult:
    """Both directions over a checkpoint series, the gap per checkpoint, and the lag.

    See :func:`gapeval.experiments.curve.curve` for the options (``suite``, ``out``, ``model``...).
    """
    from gapeval.experiments.curve import curve as measure

    return measure(checkpoints, **options)


def knowledge(
    experiment: Literal["inject", "edit"],
    spec: str | Path | None = None,
    *,
    out: str | Path | None = None,
    html: bool = True,
    progress: Callable[[str], None] | None = None,
) -> KnowledgeResult:
    """Teach knowledge through one direction and measure whether it reaches the other.

    Args:
        experiment: ``inject`` (new entities) or ``edit`` (changed facts).
        spec: The experiment's YAML spec (default: the built-in one on the built-in model).
        out: The experiment folder (default ``knowledge-EXPERIMENT``).
        html: Also write the HTML report over every run.
        progress: Called with a line as each arm is trained and evaluated.

    """
    from gapeval.experiments.knowledge import run_experiment

    return run_experiment(experiment, spec, out=out, report=html, progress=progress)


def study_mechanisms(
    spec: str | Path | None = None,
    *,
    out: str | Path = "study-mechanisms",
    progress: Callable[[str], None] | None = None,
) -> StudyResult:
    """The paper's three mechanisms tested on architecture variants of the built-in model.

    Trains (or reuses) each variant, then runs the curve (the lag), knowledge injection and editing
    (transfer), and both probes on it; writes ``study.csv``, ``study.json``, figures and ``index.html``.

    Args:
        spec: A study spec (YAML; default: the built-in one, the shipped training recipe).
        out: The study folder.
        progress: Called with a line as each part finishes.

    """
    from gapeval.experiments.study import run_study

    return run_study(spec, out=out, progress=progress)


def sweep(
    spec: str | Path,
    out: str | Path = "sweep",
    *,
    html: bool = True,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Many runs (models x suites x judges x seeds) from one YAML spec, resumable, scored together."""
    from gapeval.sweep import load_sweep
    from gapeval.sweep import sweep as run_sweep

    return run_sweep(load_sweep(spec), out, progress=progress, report=html)


def train_toy(
    out: str | Path = "toy-train",
    *,
    eval_items: int = 400,
    init: str | Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[dict[str, float]], None] | None = None,
    **settings: Any,
) -> Path:
    """Train the built-in model (fixed seeds, fresh procedural data); returns the last checkpoint.

    Args:
        out: The checkpoint folder (with ``train_log.jsonl``).
        eval_items: Held-out items evaluated at every checkpoint and handed to ``on_eval`` (0: none).
        init: Fine-tune from this checkpoint.
        on_step: Called with the step and the loss.
        on_eval: Called with each held-out evaluation (``und``, ``gen`` accuracy).
        **settings: :class:`~gapeval.toy.train.TrainConfig` fields (``steps``, ``batch_size``,
            ``d_model``, ``n_layers``, ``seed``, ``checkpoint_every``, ``arch``...); its defaults are the
            shipped weights' recipe (``arch`` ``shared``; ``mot`` and ``towers`` train from scratch with
            the same data, steps and seeds).

    """
    from gapeval.toy.train import train_recipe

    return train_recipe(out, eval_items=eval_items, init=init, on_step=on_step, on_eval=on_eval, **settings)


def serve(
    model: str,
    options: dict[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8900,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve a model over the gapeval model-server protocol until interrupted; ``on_ready`` gets its URL."""
    from gapeval.serve.server import ModelServer

    server = ModelServer(model, options or {}, host=host, port=port)
    try:
        if on_ready:
            on_ready(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@dataclass
class SampleResult:
    """What :func:`sample` wrote: the folder, and the model folder its replayable outputs are under."""

    path: Path
    model: str


def sample(target: str | Path = "gapeval-sample") -> SampleResult:
    """Write a 12-item sample in the authors' layout, with replayable outputs and their verdicts."""
    from gapeval.suites.sample import SAMPLE_MODEL, write_sample_tree

    folder = Path(target)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise GapevalError("exists and is not an empty folder; pick another folder", file=folder)
    return SampleResult(write_sample_tree(folder), SAMPLE_MODEL)


def suites() -> dict[str, str]:
    """The suites gapeval knows by name (built in and plugins), with a line on each."""
    from gapeval.suites import available_suites

    return available_suites()


def validate(suite: str, *, skip_invalid: bool = False) -> Suite:
    """Load a suite (checking every item); with ``skip_invalid``, its good items and a list of the bad."""
    from gapeval.suites import load_suite

    return load_suite(suite, skip_invalid=skip_invalid)


def listing() -> dict[str, dict[str, dict[str, str | None]]]:
    """The model families, judges and executors: per kind, per name, what it is, does and needs."""
    from gapeval.models.base import available_models
    from gapeval.registry import EXECUTORS, JUDGES, MODELS, Registry

    def entries(reg: Registry) -> dict[str, dict[str, str | None]]:
        return {
            n: {"description": e.description, "extra": e.extra, "example": e.example, "does": e.does}
            for n, e in reg.entries().items()
        }

    models = entries(MODELS)
    models["py"] = {"description": available_models()["py"], "extra": None,
                    "example": "py:my_adapter.py:MyModel", "does": "what its class declares"}  # fmt: skip
    return {"models": models, "judges": entries(JUDGES), "executors": entries(EXECUTORS)}


def fetch(name: str = "gapeval") -> Path:
    """Download the public GapEval snapshot into the data home (needs network and ``gapeval[hub]``)."""
    from gapeval.suites import data_home
    from gapeval.suites.official import fetch as download

    if name != "gapeval":
        raise GapevalError(f"unknown dataset {name!r}; available: gapeval", field="name")
    return download(data_home() / "gapeval")


def import_authors_rubrics(repo: str | Path, out: str | Path = "authors-rubrics") -> Any:
    """Convert the authors' judge templates of one's own checkout into a rubric directory.

    The result (:class:`~gapeval.judges.authors.ImportReport`) says which files were written and which
    templates their script names that the checkout lacks. Judge with ``rubrics=DIR`` (``--rubrics DIR``)
    and ``protocol=paper`` to send the requests the authors' script sends.
    """
    from gapeval.judges.authors import import_authors

    return import_authors(repo, out)


@dataclass
class OverlapResult:
    """The parameter-overlap probe, and where a knowledge experiment's arms wrote.

    Attributes:
        overlap: Per module, the two directions' gradients compared
            (:class:`~gapeval.experiments.probes.Overlap`).
        changes: With ``arms``, the relative weight change per module and arm
            (:class:`~gapeval.experiments.probes.WeightChanges`).

    """

    overlap: Any
    changes: Any = None


def probe_overlap(
    model: str = "toy",
    *,
    facts: str | Path | None = None,
    examples: int = 32,
    topk: float = 1.0,
    seed: int = 0,
    options: Mapping[str, str] | None = None,
    arms: str | Path | None = None,
) -> OverlapResult:
    """Where the understanding and the generation loss of the same facts land in a model, per module.

    Args:
        model: ``toy``, ``toy:CHECKPOINT`` (any architecture variant) or ``janus:PATH``.
        facts: A knowledge spec whose facts are asked both ways (default: the built-in injection spec's
            new entities).
        examples: Examples per direction.
        topk: The top percentage of parameters by gradient magnitude compared between the directions.
        seed: The examples' seed.
        options: Adapter options (``device``, ``dtype`` for janus).
        arms: A knowledge experiment's folder: also the relative weight change per module of each arm.

    """
    from gapeval.experiments.probes import facts_overlap, weight_changes

    result = facts_overlap(model, facts, examples=examples, topk=topk, seed=seed, options=options)
    return OverlapResult(result, weight_changes(arms) if arms is not None else None)


def probe_representations(
    model: str = "toy",
    *,
    facts: str | Path | None = None,
    per_entity: int = 16,
    seed: int = 0,
    at: str = "last",
) -> Any:
    """Whether the two paths of the built-in model hold an entity the same way, per layer.

    A linear probe trained to read the entity from the understanding path's states is read on the
    generation path's (:class:`~gapeval.experiments.probes.Representations`: accuracy within and across,
    with intervals, and CKA).

    Args:
        model: ``toy`` or ``toy:CHECKPOINT`` (any architecture variant, a knowledge arm).
        facts: A knowledge spec whose facts are the entities (default: the world's invented entities).
        per_entity: Examples per entity and direction.
        seed: The examples' seed.
        at: Read each request at its ``last`` token or at the ``entity``'s name token.

    """
    from gapeval.experiments.probes import probe_representations as probe
    from gapeval.experiments.probes import spec_entities

    entities = spec_entities(facts)
    return probe(model, entities, per_entity=per_entity, seed=seed, at=at)
