"""Many runs as one job: ``gapeval sweep SPEC.yaml`` over models x suites x judge chains x seeds.

Each (suite, model, seed) is one ordinary run directory, ``OUT/SUITE/LABEL/seed-N/``, made by
:func:`gapeval.api.run` with the sweep's executor (``local``, or ``ray`` to spread the replicas over a
cluster); each judge chain then judges that run's outputs (the model runs once, whatever the number of
chains). Running the same sweep again resumes every run where it stopped and judges only what is
unjudged, so a sweep is resumable as a whole. It ends with one combined leaderboard per suite (every
model, seed and chain) and one HTML report per suite over all of its runs.

A spec::

    name: two-models
    suites: [shapes-v1-mini]
    models:
      - {model: toy, label: toy}
      - {model: "janus:deepseek-community/Janus-Pro-1B", label: janus-pro-1b, options: {dtype: bfloat16}}
    seeds: [0, 1]
    judges: [[scene]]            # judge chains; omitted: each suite's own
    executor: ray                # or local (the default)
    executor_options: {replicas: 2, gpus_per_replica: 1}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gapeval import pipeline as api
from gapeval.files import output_folder
from gapeval.scoring.result import ScoreResult
from gapeval.specfile import Seed, load_spec_file
from gapeval.suites import load_suite

#: Bounds of a sweep: a spec past them is a typo or a runaway generator, not a plan.
MAX_BATCH, MAX_SEEDS, MAX_RUNS = 4096, 100, 1000


class SweepModel(BaseModel):
    """One model of a sweep.

    Attributes:
        model: The model spec.
        label: Its name in tables and its folder (default: the spec, made filesystem-safe).
        options: Adapter options.
        batch_size: Requests per model call (default: the adapter's).

    """

    model_config = ConfigDict(extra="forbid")

    model: str
    label: str = ""
    options: dict[str, str] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH)

    def folder(self) -> str:
        """The label as a folder name."""
        return api.slug(self.label or self.model) or "model"


class SweepSpec(BaseModel):
    """A sweep.

    Attributes:
        name: A name for the sweep.
        suites: Suite names or paths.
        models: The models.
        seeds: Run seeds.
        judges: Judge chains, each a list of judge specs; empty: each suite's own chain.
        executor: ``local`` or ``ray`` (``ray:ADDRESS``).
        executor_options: The executor's options (``replicas``, ``gpus_per_replica``, ``address``...).
        judge_options: Options for judges that take them.

    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("sweep", max_length=200)
    suites: list[str] = Field(min_length=1, max_length=100)
    models: list[SweepModel] = Field(min_length=1, max_length=MAX_RUNS)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS)
    judges: list[list[str]] = Field(default_factory=list, max_length=20)
    executor: str = "local"
    executor_options: dict[str, str] = Field(default_factory=dict)
    judge_options: dict[str, str] = Field(default_factory=dict)

    @field_validator("models", mode="before")
    @classmethod
    def _model_strings(cls, value: Any) -> Any:
        """``models: [toy, "janus:PATH"]`` is shorthand for ``[{model: toy}, ...]``."""
        if not isinstance(value, list):
            return value
        return [{"model": v} if isinstance(v, str) else v for v in value]

    @model_validator(mode="after")
    def _distinct(self) -> SweepSpec:
        runs = len(self.suites) * len(self.models) * len(self.seeds)
        if runs > MAX_RUNS:
            raise ValueError(f"{runs} runs (suites x models x seeds); a sweep holds at most {MAX_RUNS}")
        folders = [m.folder() for m in self.models]
        if len(set(folders)) != len(folders):
            raise ValueError("two models share a label; give each its own")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds may not repeat")
        if any(not chain for chain in self.judges):
            raise ValueError("a judge chain names at least one judge")
        return self


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec.

    Raises:
        GapevalError: Unreadable YAML or an invalid field, naming the file and field.

    """
    return load_spec_file(path, SweepSpec, "sweep spec")


@dataclass
class SweepRun:
    """One run of the sweep."""

    suite: str
    label: str
    seed: int
    path: Path
    resumed: bool
    done: int


@dataclass
class SweepResult:
    """What a sweep ran, and the combined scores per suite and judge chain.

    Attributes:
        name: The sweep's name (from its spec).
        runs: Every run, in sweep order.
        scores: ``(suite, chain)`` -> the combined score over every run of that suite.
        reports: Suite -> its HTML report.

    """

    name: str = ""
    runs: list[SweepRun] = field(default_factory=list)
    scores: dict[tuple[str, tuple[str, ...]], ScoreResult] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)


def sweep(
    spec: SweepSpec, out: str | Path, *, progress: Callable[[str], None] | None = None, report: bool = True
) -> SweepResult:
    """Run (or resume) every run of the sweep, judge it with every chain, and score it all together."""
    folder = output_folder(out)
    say = progress or (lambda _: None)
    result = SweepResult(name=spec.name)
    for suite in spec.suites:
        loaded = load_suite(suite)
        chains = [list(c) for c in spec.judges] or [list(loaded.judges)]
        paths: list[Path] = []
        for m in spec.models:
            for seed in spec.seeds:
                path = folder / _safe(loaded.name) / m.folder() / f"seed-{seed}"
                label = f"{m.label or m.model} seed {seed}"
                res = api.run(
                    loaded, m.model, out=path, seed=seed, judges=chains[0], judge_options=spec.judge_options,
                    model_options=m.options, batch_size=m.batch_size, executor=spec.executor,
                    executor_options=spec.executor_options, label=label,
                )  # fmt: skip
                for chain in chains[1:]:
                    api.judge(path, chain, suite=loaded, options=spec.judge_options)
                result.runs.append(SweepRun(loaded.name, label, seed, path, res.resumed, res.stats.done))
                paths.append(path)
                resumed = "resumed, " if res.resumed else ""
                say(f"{loaded.name} / {label}: {resumed}{res.stats.done} outputs made")
        for chain in chains:
            result.scores[(loaded.name, tuple(chain))] = api.score(
                paths, judges=chain if spec.judges else None, method="reference", fragility_n=0
            )
        if report:
            site = api.report_site(
                paths, out=folder / _safe(loaded.name) / "report", fragility_n=0, suite=loaded
            )
            result.reports[loaded.name] = site.index
    return result


def _safe(name: str) -> str:
    return api.slug(name, width=None) or "suite"
