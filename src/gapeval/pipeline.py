"""The evaluation pipeline: run, judge, score and report, the verbs everything else is built from.

The experiments (checkpoint curves, knowledge, sweeps) compose these; :mod:`gapeval.api`, the facade
the CLI and notebooks call, re-exports them beside the experiments' verbs.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gapeval import bundle
from gapeval.errors import GapevalError
from gapeval.executors.base import CommitStats, Committer, Executor, ModelSpec, image_index, plan
from gapeval.items import Item
from gapeval.judges.base import Judge, JudgeContext, JudgeStats, judge_run
from gapeval.models.base import ModelContext, model_class, model_identity
from gapeval.records import OutputStatus, RunManifest, RunRecords, RunSpec, failure_reason, now, redact
from gapeval.registry import EXECUTORS, JUDGES, REPORTS
from gapeval.report.markdown import summary_markdown
from gapeval.report.site import SitePaths, write_site
from gapeval.scoring.gap_analysis import analyse
from gapeval.scoring.joint import RunScores, item_scores, score_run
from gapeval.scoring.judge_error import Audit, corrected_scores
from gapeval.scoring.leaderboard import Coupling, leaderboard
from gapeval.scoring.mirt import Responses
from gapeval.scoring.responses import from_records, read_csv, unique_names, write_csv
from gapeval.scoring.result import ScoreResult
from gapeval.store import RunStore, new_manifest
from gapeval.suites import data_home, load_suite
from gapeval.suites.base import Suite

__all__ = [
    "DemoResult",
    "EvaluateResult",
    "RunResult",
    "ScoreResult",
    "default_run_dir",
    "demo",
    "evaluate",
    "execute",
    "export",
    "judge",
    "platform_note",
    "read_runs",
    "report",
    "report_site",
    "resolve_judges",
    "resolve_run",
    "run",
    "run_spec",
    "score",
    "slug",
    "suite_of",
    "writable_run",
]


@dataclass
class RunResult:
    """What :func:`run` did.

    Attributes:
        path: The run directory.
        resumed: Whether it resumed an existing run.
        stats: Outputs written this time (done, failed, unsupported) and how many were already done.
        judge_stats: Per judge id, what the judging did.
        judges: The judge chain used, and why (``"suite"`` when the suite's own chain was taken).
        suite: The suite.
        model_loaded: Whether the model had to be built (False when nothing was pending).

    """

    path: Path
    resumed: bool
    stats: CommitStats
    judge_stats: dict[str, JudgeStats]
    judges: list[str]
    judges_from: Literal["suite", "given"]
    suite: Suite
    model_loaded: bool


def slug(text: str, width: int | None = 60) -> str:
    """``text`` as a folder name: runs of other characters become one ``-``, cut to ``width``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:width]


def default_run_dir(suite: str, model: str) -> Path:
    """A fresh, unique directory under ``runs/`` (two runs never share one by accident)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return Path("runs") / f"{slug(f'{Path(suite).name}-{model}')}-{stamp}"


def _judges(
    specs: Sequence[str],
    suite: Suite,
    manifest: RunManifest,
    options: Mapping[str, str] | None,
    notify: Callable[[str], None] | None = None,
) -> list[Judge]:
    out: list[Judge] = []
    for spec in specs:
        family, _, arg = spec.partition(":")
        cls = JUDGES.load(family)
        context = JudgeContext(suite=suite, manifest=manifest, options=dict(options or {}), notify=notify)
        out.append(cls.from_spec(arg, context))
    return out


def run_spec(
    suite: Suite,
    model: str,
    *,
    seed: int = 0,
    samples_und: int | None = None,
    samples_gen: int | None = None,
    model_options: Mapping[str, str] | None = None,
) -> RunSpec:
    """What a run of ``model`` on ``suite`` is: the spec a run directory is resumed by.

    The model's identity is told by its adapter without loading weights; the suite defines its decoding
    protocol unless the samples are given (e.g. shapes-v1 draws 3 images per prompt).
    """
    options = dict(model_options or {})
    return RunSpec(
        suite_name=suite.name,
        suite_version=suite.version,
        suite_hash=suite.content_hash(),
        n_items=len(suite.items),
        model=model,
        model_options=redact(options),
        model_identity=model_identity(model, options, ModelContext.of(suite)),
        seed=seed,
        samples_und=samples_und or suite.defaults.get("samples_und", 1),
        samples_gen=samples_gen or suite.defaults.get("samples_gen", 1),
    )


@contextmanager
def writable_run(
    target: str | Path | RunStore,
    command: str,
    *,
    spec: RunSpec | None = None,
    manifest: RunManifest | None = None,
    relocatable: bool = False,
) -> Iterator[RunStore]:
    """A run to write into, owned (locked) by this process until the block ends.

    Args:
        target: A run directory or bundle file, or a store the caller already holds (used as is and
            left open: its owner closes it).
        command: What is writing, shown to another process that finds the run locked.
        spec: Make the run if it does not exist (with ``manifest``), else resume it if its spec is this
            one (see :meth:`RunStore.open_or_create`). Without it the run must exist.
        manifest: The manifest of a run made here (default: a new one for ``spec``).
        relocatable: A resumed run's model may have moved (a model server's address).

    Yields:
        The store, locked. A run extracted from a bundle file is packed back into that file when the
        block ends without error.

    """
    if isinstance(target, RunStore):
        yield target
        return
    path = resolve_run(target)
    if spec is None:
        store = RunStore.open(path)
        store.lock(command)
    elif (path / "manifest.json").exists():
        store, _ = RunStore.open_or_create(path, spec, command=command, relocatable=relocatable)
    else:
        store = RunStore.create(path, spec, manifest=manifest, command=command)
    with store:
        yield store
    bundle.repack(path)


def run(
    suite: str | Suite,
    model: str,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    samples_und: int | None = None,
    samples_gen: int | None = None,
    judges: Sequence[str] | None = None,
    judge_options: Mapping[str, str] | None = None,
    model_options: Mapping[str, str] | None = None,
    batch_size: int | None = None,
    executor: str = "local",
    executor_options: Mapping[str, str] | None = None,
    label: str | None = None,
    skip_invalid: bool = False,
    progress: Callable[[str, int], None] | None = None,
    on_total: Callable[[Mapping[str, int]], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunResult:
    """Run a model on a suite, then judge the outputs.

    Everything is validated before any work: the suite, the model's identity (told by its adapter
    without loading weights), the judges, the executor and the run directory. With ``out`` pointing at
    an existing run of the same spec, the run resumes: the model is built only if something is still
    pending (or failed), and only unjudged outputs are judged.

    Args:
        suite: A suite name or path, or a loaded :class:`~gapeval.suites.base.Suite`.
        model: The model spec (``toy``, ``replay:NAME``, ``py:FILE.py:Class``, a plugin family).
        out: The run directory (default: a fresh one under ``runs/``).
        seed: The run seed.
        samples_und: Answers per item (default: the suite's).
        samples_gen: Images per item (default: the suite's).
        judges: The judge chain, by precedence (default: the suite's own, e.g. ``scene`` for shapes).
        judge_options: Options for judges that take them (``base_url``, ``protocol``...).
        model_options: Adapter options.
        batch_size: Requests per model call (default: the adapter's preference).
        executor: The executor's registry name (``local``, ``ray`` or ``ray:ADDRESS``).
        executor_options: Executor options (the Ray executor's ``replicas``, ``gpus_per_replica``...).
        label: The run's display name in tables (default: the model spec).
        skip_invalid: Load a suite's good items and list the bad ones.
        progress: Called with a direction (``und``, ``gen``) and how many of its outputs just finished.
        on_total: Called once with the outputs the run holds per direction.
        notify: Called with what a slow or failing judge endpoint is doing (a retry and why).

    """
    loaded = load_suite(suite, skip_invalid=skip_invalid) if isinstance(suite, str) else suite
    options = dict(model_options or {})
    spec = run_spec(loaded, model, seed=seed, samples_und=samples_und, samples_gen=samples_gen,
                    model_options=options)  # fmt: skip
    exec_family, _, exec_arg = executor.partition(":")
    runner = EXECUTORS.load(exec_family).from_spec(exec_arg, dict(executor_options or {}))
    path = Path(out) if out is not None else default_run_dir(loaded.name, model)
    command = f"gapeval run -m {model}"
    resumed = (path / "manifest.json").exists()
    if resumed:
        # Judges may read the manifest: the run's own (its spec is checked when the run is opened).
        with RunStore.open(path) as existing:
            manifest = existing.manifest()
    else:
        source = str(suite) if isinstance(suite, str) else loaded.root
        manifest = new_manifest(spec, label=label or "", executor=executor, suite_source=source)
    # Every judge is built (its key, extra and endpoint checked) before the directory is made or locked.
    chain = _judges(list(judges) if judges is not None else list(loaded.judges), loaded, manifest,
                    judge_options, notify)  # fmt: skip
    relocatable = bool(getattr(model_class(model)[0], "relocatable", False))
    with writable_run(path, command, spec=spec, manifest=manifest, relocatable=relocatable) as store:
        if not resumed:
            store.put_items(loaded.items)
        elif label is not None and label != store.manifest().label:
            store.update_manifest(label=label)
        store.log("resume" if resumed else "start", {"model": model})
        model_spec = ModelSpec(spec=model, options=options, context=ModelContext.of(loaded),
                               batch_size=batch_size)  # fmt: skip
        stats, pending = execute(store, loaded, runner, model_spec, progress=progress, on_total=on_total)
        judge_stats = judge_run(store, loaded, chain) if chain else {}
    return RunResult(
        path=path,
        resumed=resumed,
        stats=stats,
        judge_stats=judge_stats,
        judges=[j.judge_id for j in chain],
        judges_from="given" if judges is not None else "suite",
        suite=loaded,
        model_loaded=pending > 0,
    )


def execute(
    store: RunStore,
    suite: Suite,
    runner: Executor,
    model: ModelSpec,
    *,
    progress: Callable[[str, int], None] | None = None,
    on_total: Callable[[Mapping[str, int]], None] | None = None,
) -> tuple[CommitStats, int]:
    """Make every output the run still lacks, committing each as it comes.

    Returns:
        What was committed, and how many work units were pending (0: the model was never built).

    """
    work = plan(store, suite.items)
    if on_total:
        on_total(work.totals)
    if progress:
        for direction, n in work.done.items():
            progress(direction, n)
    store.update_manifest(started_at=store.manifest().started_at or now())
    store.log("execute", {"pending": len(work.units), "executor": runner.name})
    committer = Committer(store, progress)
    committer.stats.skipped_done = work.already_done
    for result in runner.execute(model, work.units, image_index(suite.items)):
        committer.commit(result)
    described = runner.model_description()
    if described:
        store.update_manifest(model_description=described)
    if not store.outputs(OutputStatus.PENDING):
        store.update_manifest(finished_at=store.manifest().finished_at or now())
    return committer.stats, len(work.units)


def resolve_run(path: str | Path) -> Path:
    """A run directory: ``path`` itself, or the extraction of a bundle file (see :mod:`gapeval.bundle`)."""
    return bundle.open_bundle(path) if bundle.is_bundle(path) else Path(path)


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Pack a run, with its suite's items and images, into one shareable file (see :mod:`gapeval.bundle`)."""
    path = resolve_run(run_dir)
    with RunStore.open(path) as store:
        suite = suite_of(store)
    return bundle.export(path, out, suite)


def suite_of(store: RunStore, override: str | None = None) -> Suite:
    """Reload the suite a run was made on and check it is the same content.

    A run extracted from a bundle uses the bundle's own snapshot of the suite.
    """
    manifest = store.manifest()
    snapshot = bundle.suite_of_bundle(store.path) if override is None else None
    source = override or manifest.suite_source
    if snapshot is None and not source:
        raise GapevalError("the run does not record its suite; pass --suite", file=store.manifest_path)
    suite = snapshot or load_suite(source, skip_invalid=True)
    if suite.content_hash() != manifest.spec.suite_hash:
        raise GapevalError(
            f"suite {source} has changed since the run (content hash differs)",
            file=store.manifest_path,
            field="spec.suite_hash",
        )
    return suite


def judge(
    run_dir: str | Path | RunStore,
    judges: Sequence[str],
    *,
    suite: Suite | None = None,
    suite_source: str | None = None,
    options: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict[str, JudgeStats]:
    """Judge a run's outputs with a chain of judges (never re-running the model).

    ``options`` configure judges that take them (the VLM judge: base_url, protocol, concurrency...).
    Every judge is built (and its key and extra checked) before any output is judged.
    """
    if not judges:
        raise GapevalError("name at least one judge", field="--judge")
    with writable_run(run_dir, "gapeval judge") as store:
        loaded = suite or suite_of(store, suite_source)
        chain = _judges(judges, loaded, store.manifest(), options, notify)
        return judge_run(store, loaded, chain, progress=progress)


def resolve_judges(manifest: RunManifest, given: Sequence[str] | None) -> list[str]:
    """Judge ids for scoring: the given ones, else the run's last judging chain.

    A given ``openai:MODEL`` matches ``openai:MODEL[protocol]...``, and a family (``noisy``) its ids
    (``noisy:und=...``): the one used last.
    """
    if not given:
        return list(manifest.judge_chain)
    known = [j.judge_id for j in manifest.judges]
    out: list[str] = []
    for g in given:
        if g in known:
            out.append(g)
            continue
        prefixed = [k for k in known if k.startswith((g + "[", g + "@", g + ":"))]
        out.append(prefixed[-1] if prefixed else g)
    return out


def platform_note() -> str:
    """Whether this machine's paper-compatible numbers are the authors' own (from the cached check)."""
    from gapeval.scoring.reference_platform import cached_check, describe

    return describe(cached_check(data_home() / "platform-check.json"))


def has_torch() -> bool:
    """Whether the paper-compatible Gap can be computed here (it needs torch)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def read_runs(runs: Sequence[str | Path | RunRecords]) -> list[RunRecords]:
    """Read runs' records (the I/O edge of scoring)."""
    out: list[RunRecords] = []
    for r in runs:
        if isinstance(r, RunRecords):
            out.append(r)
            continue
        with RunStore.open(resolve_run(r)) as store:
            out.append(store.records())
    return out


def score(
    runs: Sequence[str | Path | RunRecords] = (),
    *,
    judges: Sequence[str] | None = None,
    method: Literal["mirt", "reference", "both"] = "mirt",
    coupling: Coupling = "categories",
    fragility_n: int = 6,
    n_boot: int = 200,
    responses: str | Path | Responses | None = None,
    unsupported_as_wrong: bool = False,
    workers: int = 2,
    keep_responses: bool = False,
    export: str | Path | None = None,
    judge_audit: str | Path | Audit | None = None,
    correct_by: str = "direction",
) -> ScoreResult:
    """Score runs from their stored verdicts: accuracies, joint tables, and the gap.

    Args:
        runs: Run directories (one model each) or their records.
        judges: Judge ids by precedence (default: each run's last judging chain).
        method: ``mirt`` (the identified gap, with intervals), ``reference`` (the paper's Gap Score in
            the leaderboard), or ``both``.
        coupling: For the reference method: ``categories`` (released scorer) or ``models`` (appendix).
        fragility_n: Perturbed refits for the reference Gap's fragility (0: off).
        n_boot: Bootstrap resamples for the MIRT intervals (0: off).
        responses: Score a tidy response CSV (or tensor) instead of runs, for the MIRT gap.
        unsupported_as_wrong: Count outputs a model lacks the capability for as wrong (default: missing).
        workers: Processes for the fits.
        keep_responses: Build the response tensor (``result.responses``) with any method, not only
            with the MIRT gap.
        export: Also write the response tensor as a tidy CSV here (implies ``keep_responses``); never
            inside a run directory.
        judge_audit: An audit of the judge deciding these runs (``gapeval audit``'s file, or the audit):
            the scores are also given corrected for its error per direction (``result.corrected``).
        correct_by: ``category``: also the corrected scores per category, each category fitted on its
            own questions with the judge's rates in that category (where the audit estimates them).

    """
    audit = (
        _read_audit(judge_audit)
        if judge_audit is not None and not isinstance(judge_audit, Audit)
        else judge_audit
    )
    if correct_by not in ("direction", "category"):
        raise GapevalError(f"unknown {correct_by!r}; direction or category", field="--correct-by")
    if audit is not None:
        keep_responses = True
    if export is not None:
        keep_responses = True
        for r in runs:
            if not isinstance(r, RunRecords) and Path(export).resolve().is_relative_to(Path(r).resolve()):
                raise GapevalError("--export must not write inside a run directory", file=export,
                                   field="--export")  # fmt: skip
    if method not in ("mirt", "reference", "both"):
        raise GapevalError(f"unknown method {method!r}; available: mirt, reference, both", field="--method")
    if coupling not in ("categories", "models"):
        raise GapevalError(f"unknown coupling {coupling!r}", field="--coupling")
    if not runs and responses is None:
        raise GapevalError("give run directories or --responses CSV", field="RUNS")
    records = read_runs(runs)
    names = unique_names(records)
    scored = []
    notes: list[str] = []
    for rec, name in zip(records, names, strict=True):
        order = resolve_judges(rec.manifest, judges)
        s = score_run(rec, order, unsupported_as_wrong=unsupported_as_wrong)
        scored.append(s.model_copy(update={"model": name}))
        if not order:
            notes.append(f"{name}: the run has not been judged yet (gapeval judge RUN -j JUDGE)")
        elif s.overall.und_n + s.overall.gen_n == 0:
            notes.append(f"{name}: nothing is judged by {', '.join(order)}: no score")
    if responses is None and all(s.overall.und_n + s.overall.gen_n == 0 for s in scored):
        # Nothing decided anywhere: a table of dashes and a gap of zero would look like a result.
        first = records[0]
        made = [o for o in first.outputs if o.status is not OutputStatus.UNSUPPORTED]
        if made and all(o.status is OutputStatus.FAILED for o in made):
            # The cause is upstream of judging: say it, and how to retry, not "run gapeval judge".
            reasons = list(dict.fromkeys(failure_reason(o.error) for o in made))
            raise GapevalError(
                f"nothing to score: all {len(made)} outputs failed "
                f"(first reasons: {'; '.join(reasons[:3])}); fix the cause and run the same gapeval run "
                "command again to retry them",
                file=first.path,
                field="outputs",
            )
        hint = "it has not been judged" if not first.manifest.judge_chain else "its judges decided no output"
        raise GapevalError(
            f"nothing to score: {hint}; run gapeval judge RUN -j JUDGE", file=first.path, field="verdicts"
        )
    notes += _coverage_notes(records, names, scored, unsupported_as_wrong)
    want_reference = method in ("reference", "both")
    gap = want_reference and has_torch()
    if want_reference and not gap:
        notes.append("the Gap column needs torch (pip install 'gapeval[torch]')")
    rows = (
        leaderboard(scored, gap=gap, coupling=coupling, fragility_n=fragility_n, workers=workers)
        if scored
        else []
    )
    analysis = None
    data: Responses | None = None
    if method in ("mirt", "both") or keep_responses:
        if isinstance(responses, Responses):
            data = responses
        elif responses is not None:
            data = read_csv(responses)
        else:
            data = from_records(
                records,
                names=names,
                unsupported_as_wrong=unsupported_as_wrong,
                orders=[s.judges for s in scored],
            )
    if method in ("mirt", "both") and data is not None:
        fittable, dropped = _fittable(data)
        notes += dropped
        if fittable is not None:
            with warnings.catch_warnings():  # degenerate cells are handled; numpy's noise is not news
                warnings.simplefilter("ignore", RuntimeWarning)
                analysis = analyse(fittable, n_boot=n_boot, workers=workers)
        if not keep_responses:
            data = fittable
    if export is not None:
        if data is None or not data.models:
            raise GapevalError("nothing to export: no decided responses", field="--export")
        write_csv(data, export)
    corrected = []
    if audit is not None and data is not None:
        deciders = {s.judges[0] for s in scored if s.judges}
        if audit.judge not in {j for s in scored for j in s.judges} and responses is None:
            raise GapevalError(f"the audit is of judge {audit.judge!r}, which decides none of these scores "
                               f"(they are decided by {', '.join(sorted(deciders)) or 'nobody'})",
                               file=judge_audit if not isinstance(judge_audit, Audit) else None,
                               field="judge")  # fmt: skip
        others = ", ".join(sorted(deciders - {audit.judge}))
        if others:
            notes.append(f"the audit is of {audit.judge}; some verdicts come from {others}, corrected "
                         "with its rates all the same")  # fmt: skip
        by_category = audit.category_counts() if correct_by == "category" else None
        if by_category is not None:
            notes.append("corrected per category: each category fitted on its own questions with the "
                         "judge's rates there, where the audit estimates them")  # fmt: skip
        try:
            corrected = corrected_scores(data, audit.counts(), n_boot=n_boot, ci=audit.ci,
                                         by_category=by_category)  # fmt: skip
        except ValueError as exc:
            raise GapevalError(str(exc), file=audit.run, field="judge_audit") from None
    platform = platform_note() if any(r.gap is not None for r in rows) else None
    return ScoreResult(scored, rows, analysis, notes, platform, data, corrected,
                       audit.judge if audit is not None else None)  # fmt: skip


def _read_audit(path: str | Path) -> Audit:
    """An audit file written by ``gapeval audit``."""
    from pydantic import ValidationError

    from gapeval.files import read_json
    from gapeval.specfile import validation_error

    try:
        return Audit.model_validate(read_json(Path(path)))
    except ValidationError as exc:
        raise validation_error(exc, path) from None


def _fittable(data: Responses) -> tuple[Responses | None, list[str]]:
    """Drop models with no decided response in a direction: there is no gap to identify for them."""
    notes: list[str] = []
    keep = []
    for m, name in enumerate(data.models):
        empty = [
            d for k, d in enumerate(("understanding", "generation")) if np.all(np.isnan(data.y[m, :, k]))
        ]
        if empty:
            notes.append(f"no identified gap for {name}: it has no decided {' or '.join(empty)} verdicts")
        else:
            keep.append(m)
    if not keep:
        return None, notes
    if len(keep) == len(data.models):
        return data, notes
    return Responses([data.models[m] for m in keep], data.items, data.y[keep], data.categories), notes


def _coverage_notes(
    records: Sequence[RunRecords],
    names: Sequence[str],
    scored: Sequence[RunScores],
    unsupported_as_wrong: bool,
) -> list[str]:
    """A note when models were scored on different items (e.g. one cannot edit)."""
    if len(records) < 2:
        out = []
        for s in scored:
            unsupported = s.overall.und_unsupported + s.overall.gen_unsupported
            if unsupported and not unsupported_as_wrong:
                out.append(
                    f"{s.model}: {unsupported} outputs are unsupported by the model (e.g. edits) and left "
                    "out of its scores; --unsupported-as-wrong counts them as wrong"
                )
        return out
    covered = []
    for rec, s in zip(records, scored, strict=True):
        covered.append(frozenset(item_scores(rec, s.judges, unsupported_as_wrong=unsupported_as_wrong)))
    if len(set(covered)) == 1:
        return []
    sizes = ", ".join(
        f"{n}: {sum(1 for _, d in c if d == 'und')} und / {sum(1 for _, d in c if d == 'gen')} gen"
        for n, c in zip(names, covered, strict=True)
    )
    hint = "" if unsupported_as_wrong else "; --unsupported-as-wrong counts unsupported outputs as wrong"
    return [f"models were scored on different items ({sizes}){hint}"]


def report(
    run_dir: str | Path,
    *,
    kinds: Sequence[str] = ("markdown",),
    result: ScoreResult | None = None,
    fragility_n: int = 6,
    n_boot: int = 200,
) -> list[Path]:
    """Write the run's reports (default: ``report.md`` and ``report.json``); returns their paths."""
    writers = [REPORTS.load(k) for k in kinds]
    run_dir = resolve_run(run_dir)
    with RunStore.open(run_dir) as store:
        manifest = store.manifest()
    result = result or score([run_dir], method="both", fragility_n=fragility_n, n_boot=n_boot)
    return [w.write(Path(run_dir), manifest, result) for w in writers]


def report_site(
    runs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    result: ScoreResult | None = None,
    fragility_n: int = 6,
    n_boot: int = 200,
    extra_charts: Sequence[Path] = (),
    suite: Suite | None = None,
    kinds: Sequence[str] = (),
    judge_audit: str | Path | None = None,
    only: set[tuple[str, str, int]] | None = None,
    correct_by: str = "direction",
) -> SitePaths:
    """Write the HTML report of one or several runs (a static site; open ``index.html`` from disk).

    Args:
        runs: Run directories (one model each; several are compared side by side).
        out: The folder to write (default: ``RUN/report`` for one run; required for several).
        result: Their scores, if already computed (default: both methods, from the stored verdicts).
        fragility_n: Perturbed refits for the paper-compatible Gap's fragility.
        n_boot: Bootstrap resamples for the MIRT intervals.
        extra_charts: SVG charts of a study over these runs (checkpoint curves), shown first.
        suite: The suite the runs were made on, if already loaded (else each run's is reloaded, once
            per distinct suite).
        kinds: Also write these per-run reports into each run directory (e.g. ``markdown``); listed
            in the result's ``reports``.
        judge_audit: An audit of a judge (``gapeval audit``'s file): the report shows that judge's
            scores, and beside them the scores corrected for its error.
        only: A labelling sample (``(item_id, direction, sample)``): the item browser holds just these
            outputs and opens in labelling mode.
        correct_by: With an audit: ``category`` to add the scores corrected per category.

    """
    if not runs:
        raise GapevalError("give at least one run directory", field="RUNS")
    for kind in kinds:
        REPORTS.load(kind)  # an unknown kind is refused before anything is written
    if out is None and len(runs) > 1:
        raise GapevalError("a report of several runs needs -o DIR", field="--out")
    dirs = [resolve_run(r) for r in runs]
    target = Path(out) if out is not None else dirs[0] / "report"
    records = read_runs(dirs)
    audit = _read_audit(judge_audit) if judge_audit is not None else None
    # With an audit, the scores shown are the audited judge's: the ones its correction applies to.
    chosen = [audit.judge] if audit is not None else None
    result = result or score(records, judges=chosen, method="both", fragility_n=fragility_n, n_boot=n_boot,
                             judge_audit=audit, correct_by=correct_by)  # fmt: skip
    items: dict[str, Item] = {i.id: i for i in suite.items} if suite is not None else {}
    have = {suite.content_hash()} if suite is not None else set()
    for path, rec in zip(dirs, records, strict=True):
        if rec.manifest.spec.suite_hash in have:
            continue
        with RunStore.open(path) as store:
            try:
                loaded = suite_of(store)
            except GapevalError:
                continue  # the browser then shows what the run holds, without prompts and references
        have.add(rec.manifest.spec.suite_hash)
        for item in loaded.items:
            items.setdefault(item.id, item)
    orders = [resolve_judges(r.manifest, chosen) for r in records]
    reports: list[Path] = []
    for path in dirs if kinds else []:
        # One run's own report scores that run alone (a joint MIRT fit over several runs differs).
        alone = result if len(dirs) == 1 else None
        reports += report(path, kinds=kinds, result=alone, fragility_n=fragility_n, n_boot=n_boot)
    site = write_site(
        records,
        result,
        target,
        items=items,
        orders=orders,
        summary_md=summary_markdown(result),
        extra_charts=extra_charts,
        only=only,
    )
    site.reports = reports
    return site


@dataclass
class EvaluateResult:
    """What :func:`evaluate` (and :func:`demo`) did: the run, its scores and its reports.

    Attributes:
        run: The run.
        score: Its scores, with both methods (the leaderboard's Gap and the MIRT gap).
        site: The HTML report (None when not asked for).
        reports: The per-run reports written (``report.md`` for the ``markdown`` kind).

    """

    run: RunResult
    score: ScoreResult
    site: SitePaths | None
    reports: list[Path]

    @property
    def report(self) -> Path | None:
        """The first per-run report (``report.md`` for :func:`demo`)."""
        return self.reports[0] if self.reports else None


#: What :func:`demo` returns (the same as :func:`evaluate`).
DemoResult = EvaluateResult


def evaluate(
    suite: str | Suite,
    model: str,
    *,
    html: bool = True,
    kinds: Sequence[str] = (),
    fragility_n: int = 6,
    n_boot: int = 200,
    on_run: Callable[[RunResult], None] | None = None,
    **run_options: Any,
) -> EvaluateResult:
    """Run a model on a suite, judge it, score it with both methods, and write its reports.

    The HTML report is the one ``gapeval report RUN`` writes for the same run: the same scores, tables
    and figures.

    Args:
        suite: A suite name or path, or a loaded suite.
        model: The model spec.
        html: Write the HTML report (``RUN/report``).
        kinds: Also write these per-run reports into the run directory (e.g. ``markdown``).
        fragility_n: Perturbed refits for the paper-compatible Gap's fragility (0: off).
        n_boot: Bootstrap resamples for the MIRT intervals (0: off).
        on_run: Called with the run's result before it is scored (say what failed even if nothing can
            be scored).
        **run_options: Everything else :func:`run` takes (``out``, ``judges``, ``executor``...).

    """
    writers = [REPORTS.load(k) for k in kinds]  # an unknown kind is refused before any work
    res = run(suite, model, **run_options)
    if on_run:
        on_run(res)
    scored = score([res.path], method="both", fragility_n=fragility_n, n_boot=n_boot)
    reports: list[Path] = []
    if writers:
        with RunStore.open(res.path) as store:
            manifest = store.manifest()
        reports = [w.write(res.path, manifest, scored) for w in writers]
    site = report_site([res.path], result=scored, suite=res.suite) if html else None
    return EvaluateResult(run=res, score=scored, site=site, reports=reports)


def demo(
    suite: str = "shapes-v1",
    model: str = "toy",
    *,
    out: str | Path | None = None,
    fragility_n: int = 6,
    n_boot: int = 200,
    progress: Callable[[str, int], None] | None = None,
    on_total: Callable[[Mapping[str, int]], None] | None = None,
) -> EvaluateResult:
    """The main job, offline on a CPU: the built-in model on the built-in world, judged exactly."""
    return evaluate(suite, model, kinds=("markdown",), fragility_n=fragility_n, n_boot=n_boot, out=out,
                    progress=progress, on_total=on_total)  # fmt: skip
