"""The library API the CLI is a thin shell over; a notebook can call the same functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gapeval.errors import GapevalError
from gapeval.judges.base import JudgeStats, judge_run, load_judge
from gapeval.models.base import load_model
from gapeval.runner import RunStats, execute
from gapeval.store import RunSpec, RunStore, redact
from gapeval.suites import load_suite
from gapeval.suites.base import Suite


@dataclass
class RunResult:
    """What :func:`run` did."""

    path: Path
    resumed: bool
    stats: RunStats
    judge_stats: dict[str, JudgeStats]
    suite: Suite


def default_run_dir(suite: str, model: str) -> Path:
    """A fresh, unique directory under ``runs/`` (two runs never share one by accident)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(suite).name}-{model}").strip("-")[:60]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return Path("runs") / f"{slug}-{stamp}"


def run(
    suite: str | Suite,
    model: str,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    samples_und: int | None = None,
    samples_gen: int | None = None,
    judges: Sequence[str] = ("rules",),
    model_options: Mapping[str, str] | None = None,
    batch_size: int = 8,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> RunResult:
    """Run a model on a suite, then judge the outputs.

    With ``out`` pointing at an existing run of the same spec, the run resumes: only pending (and failed)
    outputs are produced and only unjudged outputs are judged.
    """
    loaded = load_suite(suite, skip_invalid=skip_invalid) if isinstance(suite, str) else suite
    options = dict(model_options or {})
    # The suite defines its decoding protocol (e.g. shapes-v1 samples 3 images per prompt).
    samples_und = samples_und or loaded.defaults.get("samples_und", 1)
    samples_gen = samples_gen or loaded.defaults.get("samples_gen", 1)
    spec = RunSpec(
        suite_name=loaded.name,
        suite_version=loaded.version,
        suite_hash=loaded.content_hash(),
        n_items=len(loaded.items),
        model=model,
        model_options=redact(options),
        seed=seed,
        samples_und=samples_und,
        samples_gen=samples_gen,
    )
    mdl = load_model(model, suite=loaded, options=options)
    path = Path(out) if out is not None else default_run_dir(loaded.name, model)
    store, resumed = RunStore.open_or_create(path, spec, mdl.describe())
    with store:
        if not resumed:
            store.update_manifest(suite_source=str(suite) if isinstance(suite, str) else loaded.root)
            store.put_items(loaded.items)
        store.log("resume" if resumed else "start", {"model": model})
        if on_total:
            on_total(len(loaded.items) * (samples_und + samples_gen))
        stats = execute(loaded, mdl, store, batch_size=batch_size, progress=progress)
        judge_stats = judge(store, judges, suite=loaded) if judges else {}
    return RunResult(path=path, resumed=resumed, stats=stats, judge_stats=judge_stats, suite=loaded)


def suite_of(store: RunStore, override: str | None = None) -> Suite:
    """Reload the suite a run was made on and check it is the same content."""
    manifest = store.manifest()
    source = override or manifest.suite_source
    if not source:
        raise GapevalError("the run does not record its suite; pass --suite", file=store.manifest_path)
    suite = load_suite(source, skip_invalid=True)
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
) -> dict[str, JudgeStats]:
    """Judge a run's outputs with a chain of judges (never re-running the model).

    ``options`` configure judges that take them (the VLM judge: base_url, concurrency, samples...).
    """
    store = run_dir if isinstance(run_dir, RunStore) else RunStore.open(run_dir)
    try:
        loaded = suite or suite_of(store, suite_source)
        chain = [load_judge(spec, suite=loaded, store=store, options=dict(options or {})) for spec in judges]
        return judge_run(store, loaded, chain)
    finally:
        if not isinstance(run_dir, RunStore):
            store.close()
