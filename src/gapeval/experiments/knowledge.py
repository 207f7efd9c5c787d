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

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from gapeval import pipeline as api
from gapeval.errors import GapevalError
from gapeval.experiments.knowledge_analysis import Cell, analyse, arm_scores
from gapeval.experiments.knowledge_data import Example, Sampler, load_examples, spec_examples, unrelated_specs
from gapeval.experiments.knowledge_spec import (
    ARM_DIRECTIONS,
    PROBES,
    Arm,
    DataSettings,
    EvalSettings,
    Experiment,
    Fact,
    KnowledgeSpec,
    Strategy,
    TrainSettings,
    builtin_spec,
    load_spec,
    parse_look,
)
from gapeval.experiments.knowledge_suite import probe_specs, probes_of, write_eval_suite
from gapeval.experiments.runners import runner_for
from gapeval.files import output_folder
from gapeval.images import safe_join
from gapeval.items import Direction
from gapeval.report import figures
from gapeval.report.render import to_csv
from gapeval.report.tables import Column, Row, Table, number, sections
from gapeval.scoring.joint import item_scores
from gapeval.specfile import validation_error
from gapeval.suites.jsonl import load_jsonl

#: The experiment's pieces, importable from here as before the split.
__all__ = [
    "ARM_DIRECTIONS",
    "PROBES",
    "Arm",
    "ArmRun",
    "Cell",
    "DataSettings",
    "EvalSettings",
    "Example",
    "Experiment",
    "Fact",
    "KnowledgeResult",
    "KnowledgeSpec",
    "Sampler",
    "Strategy",
    "TrainSettings",
    "analyse",
    "arm_scores",
    "builtin_spec",
    "load_examples",
    "load_spec",
    "parse_look",
    "probe_specs",
    "probes_of",
    "run_experiment",
    "spec_examples",
    "unrelated_specs",
    "write_eval_suite",
]


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

    def _strategy(self) -> str:
        return Strategy.model_validate(self.spec.get("strategy", {})).label()

    def table(self) -> Table:
        """Per probe, arm and evaluated direction: accuracy, change from the baseline, and the verdict."""
        columns = [
            Column(key="spec_hash", title="spec", kind="text", shown=False),
            Column(key="probe", title="probe", kind="text"),
            Column(key="arm", title="arm", kind="text"),
            Column(key="direction", title="evaluated", kind="text"),
            Column(key="n", title="n", kind="int"),
            Column(key="acc", title="acc", scale=100),
            Column(key="delta", title="change", scale=100, signed=True),
            Column(key="ci", title="95% interval", kind="interval", scale=100, signed=True),
            Column(key="p", title="p", digits=3),
            Column(key="trained", title="trained", kind="text"),
            Column(key="verdict", title="verdict", kind="text"),
        ]
        order = {p: k for k, p in enumerate(dict.fromkeys(c.probe for c in self.cells))}
        cells = sorted(self.cells, key=lambda c: order[c.probe])  # stable: the arms keep their order
        rows = []
        for c, section in zip(cells, sections(c.probe for c in cells), strict=True):
            values = c.model_dump(exclude={"low", "high"})
            values.update(spec_hash=self.spec_hash, trained="yes" if c.trained else "",
                          ci=(c.low, c.high) if c.low is not None else None)  # fmt: skip
            rows.append(Row(values=values, section=section))
        cols = {c.key: c for c in columns}
        first = next(iter(order), None)
        verdicts = [
            f"train {c.arm} -> {c.direction} evaluated: {number(c.delta, cols['delta'])} "
            f"{number((c.low, c.high), cols['ci'])}{'' if c.p is None else f', p = {c.p:.3f}'}: {c.verdict}"
            for c in self.cells
            if c.probe == first and c.verdict
        ]
        return Table(
            name="knowledge",
            title=f"knowledge {self.experiment}: {self.spec['name']}, {self._strategy()} "
            f"[{self.spec_hash[:12]}]",
            columns=columns,
            rows=rows,
            caption="Accuracy x100; change: from the untrained baseline on the same items, with its "
            "two-stage bootstrap interval and p of no change. verdict: for a direction the arm did not "
            "train, whether the taught knowledge reached it.",
            notes=verdicts,
        )


def run_experiment(
    experiment: Experiment,
    spec_path: str | Path | None = None,
    *,
    out: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    report: bool = True,
    overrides: dict[str, Any] | None = None,
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
        overrides: Spec fields to replace (``model``, ``seeds``...), validated as the file's are; the
            mechanisms study runs one spec on each architecture variant this way.

    """
    spec, file = load_spec(spec_path, experiment)
    if overrides:
        try:
            spec = KnowledgeSpec.model_validate({**spec.model_dump(mode="json"), **overrides})
        except ValidationError as exc:
            raise validation_error(exc, file) from exc
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
                      model_options=r.model_options,
                      label=f"{spec.name} {name} ({spec.strategy.label()}) [{digest[:8]}]")  # fmt: skip
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
    table.write_text(to_csv(result.table()), encoding="utf-8")
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
