"""Training dynamics: both directions over a checkpoint series, the gap at each checkpoint, and the lag.

``gapeval curve CHECKPOINT_OR_DIR...`` evaluates every checkpoint as an ordinary run (one run directory
each, so ``score``, the report and the MIRT gap work on them unchanged), then reports:

- understanding and generation accuracy per checkpoint (items decided in that direction);
- the identified MIRT gap per checkpoint, with its bootstrap interval;
- the lag: the training step at which each direction first reaches ``fraction`` of its own final
  accuracy (linear between checkpoints), their difference, and a percentile interval for it from a
  bootstrap over items (the same resampled items for both directions and every checkpoint).

The paper's "lagging effect" is a positive lag: understanding gets there before generation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from gapeval import pipeline as api
from gapeval.errors import GapevalError
from gapeval.files import output_folder
from gapeval.items import Direction
from gapeval.report import figures
from gapeval.report.render import to_csv
from gapeval.report.tables import Column, Row, Table, number
from gapeval.scoring.joint import item_scores

_STEP = re.compile(r"step[_-]?(\d+)")


#: The columns of a checkpoint curve (also used for its progress lines).
CURVE_COLUMNS = [
    Column(key="step", title="step", kind="int"),
    Column(key="und", title="Und", scale=100),
    Column(key="gen", title="Gen", scale=100),
    Column(key="und_n", title="N und", kind="int"),
    Column(key="gen_n", title="N gen", kind="int"),
    Column(key="gap", title="gap (logits)", digits=2, signed=True),
    Column(key="gap_ci", title="interval", kind="interval", digits=2, signed=True),
    Column(key="run", title="run", kind="text", shown=False),
    Column(key="checkpoint", title="checkpoint", kind="text", shown=False),
]


CURVE_CAPTION = "Accuracy x100 per direction (items decided in it); gap: the identified gap, und - gen."


class CurvePoint(BaseModel):
    """One checkpoint's evaluation.

    Attributes:
        step: The training step (from the file name ``step_XXXXX``, else the checkpoint's position).
        checkpoint: The checkpoint's path.
        run: Its run directory.
        und, gen: Accuracy per direction (mean item score over items decided in that direction).
        und_n, gen_n: Items decided per direction.
        gap, gap_low, gap_high: The identified gap (und - gen, logits) and its interval.

    """

    step: int
    checkpoint: str
    run: str
    und: float | None
    gen: float | None
    und_n: int
    gen_n: int
    gap: float | None = None
    gap_low: float | None = None
    gap_high: float | None = None


class Lag(BaseModel):
    """When each direction reaches ``fraction`` of its final accuracy, and the difference.

    Attributes:
        fraction: The share of the final accuracy that counts as reached.
        und_step, gen_step: The interpolated step for each direction.
        lag: ``gen_step - und_step`` (positive: understanding first).
        low, high: The percentile interval of ``lag`` over item resamples.
        share_positive: Share of resamples in which understanding got there first.
        n_boot: Resamples.

    """

    fraction: float
    und_step: float
    gen_step: float
    lag: float
    low: float | None
    high: float | None
    share_positive: float | None
    n_boot: int


class CurveResult(BaseModel):
    """What :func:`curve` measured, and where it wrote it."""

    suite: str
    points: list[CurvePoint]
    lag: Lag | None
    files: list[str]

    def table(self) -> Table:
        """Both directions per checkpoint, the identified gap and its interval; the lag as a note."""
        rows = []
        for p in self.points:
            values = p.model_dump(exclude={"gap_low", "gap_high"})
            values["gap_ci"] = (p.gap_low, p.gap_high) if p.gap_low is not None else None
            rows.append(Row(values=values))
        notes = []
        if self.lag is not None:
            lag = self.lag
            line = (
                f"lag at {lag.fraction:.0%} of final accuracy: understanding at step {lag.und_step:.0f}, "
                f"generation at step {lag.gen_step:.0f}: {lag.lag:+.0f} steps"
            )
            if lag.low is not None and lag.high is not None:
                line += f" (95% interval {lag.low:+.0f} to {lag.high:+.0f} steps"
                if lag.share_positive is not None:
                    line += f"; understanding first in {lag.share_positive:.0%}"
                line += f" of {lag.n_boot} item resamples)"
            notes.append(line)
        title = f"{len(self.points)} checkpoints on {self.suite}"
        return Table(name="curve", title=title, columns=list(CURVE_COLUMNS), rows=rows, caption=CURVE_CAPTION,
                     notes=notes)  # fmt: skip


def checkpoint_series(paths: Sequence[str | Path]) -> list[tuple[int, Path]]:
    """Checkpoints in training order: files as given, folders expanded to their ``step_*`` files.

    Raises:
        GapevalError: Nothing to evaluate, or a path that does not exist.

    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.is_file() and _STEP.search(q.stem))
        elif p.is_file():
            found.append(p)
        else:
            raise GapevalError("no such checkpoint or folder", file=p, field="CHECKPOINT")
    if len(found) < 2:
        raise GapevalError("a curve needs at least two checkpoints", field="CHECKPOINT")
    steps = []
    for i, p in enumerate(found):
        m = _STEP.search(p.stem)
        steps.append((int(m.group(1)) if m else i, p))
    return sorted(steps, key=lambda s: s[0])


def reach_step(steps: np.ndarray, acc: np.ndarray, fraction: float) -> float:
    """The first step at which ``acc`` reaches ``fraction`` of its last value (linear in between)."""
    target = fraction * acc[-1]
    if acc[0] >= target:
        return float(steps[0])
    for k in range(1, len(acc)):
        if acc[k] >= target:
            a0, a1 = acc[k - 1], acc[k]
            t = (target - a0) / (a1 - a0) if a1 != a0 else 1.0
            return float(steps[k - 1] + t * (steps[k] - steps[k - 1]))
    return float(steps[-1])


def lag_of(steps: np.ndarray, und: np.ndarray, gen: np.ndarray, fraction: float) -> tuple[float, float]:
    """``(und_step, gen_step)`` for per-checkpoint accuracies."""
    return reach_step(steps, und, fraction), reach_step(steps, gen, fraction)


def bootstrap_lag(
    steps: np.ndarray, und: np.ndarray, gen: np.ndarray, fraction: float, n_boot: int, seed: int
) -> np.ndarray:
    """Lags over item resamples; ``und``/``gen`` are (checkpoints, items) item scores (NaN: undecided)."""
    rng = np.random.default_rng(seed)
    n = und.shape[1]
    out = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        u = np.nanmean(und[:, idx], axis=1)
        g = np.nanmean(gen[:, idx], axis=1)
        s_u, s_g = lag_of(steps, u, g, fraction)
        out[b] = s_g - s_u
    return out


def curve(
    checkpoints: Sequence[str | Path],
    *,
    suite: str = "shapes-v1",
    out: str | Path = "curve",
    model: str = "toy:{checkpoint}",
    fraction: float = 0.9,
    n_boot: int = 200,
    seed: int = 0,
    samples_gen: int | None = None,
    judges: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CurveResult:
    """Evaluate a checkpoint series and measure both curves, the gap per checkpoint and the lag.

    Args:
        checkpoints: Checkpoint files, or folders of ``step_*`` checkpoints (``gapeval toy train``'s).
        suite: The suite every checkpoint is run on.
        out: Where the runs (``step_XXXXX/``), ``curve.csv``, ``curve.json`` and the figure go.
        model: The model spec, with ``{checkpoint}`` for the checkpoint's path (``janus:{checkpoint}``).
        fraction: The share of its final accuracy at which a direction counts as trained.
        n_boot: Resamples for the gap intervals and the lag interval (0: none).
        seed: The run seed (the same for every checkpoint) and the bootstrap's seed.
        samples_gen: Images per item (default: the suite's).
        judges: The judge chain (default: the suite's).
        progress: Called with a line as each checkpoint is done.

    Raises:
        GapevalError: Fewer than two checkpoints, a bad fraction, or a model spec without ``{checkpoint}``.

    """
    if not 0 < fraction <= 1:
        raise GapevalError("fraction must be in (0, 1]", field="--fraction")
    if "{checkpoint}" not in model:
        raise GapevalError("the model spec needs {checkpoint} where the path goes", field="--model")
    series = checkpoint_series(checkpoints)
    folder = output_folder(out)
    points: list[CurvePoint] = []
    per_item: list[dict[tuple[str, Direction], float]] = []
    loaded = None
    for step, path in series:
        # By name, so each run's manifest records a suite that judge and report can reload.
        res = api.run(suite, model.format(checkpoint=path), out=folder / f"step_{step:05d}", seed=seed,
                      samples_gen=samples_gen, judges=judges, label=f"step {step}")  # fmt: skip
        loaded = res.suite
        (records,) = api.read_runs([res.path])
        scores = item_scores(records, api.resolve_judges(records.manifest, None))
        per_item.append(scores)
        und = [v for (_, d), v in scores.items() if d is Direction.UND]
        gen = [v for (_, d), v in scores.items() if d is Direction.GEN]
        point = CurvePoint(step=step, checkpoint=str(path), run=str(res.path),
                           und=float(np.mean(und)) if und else None, gen=float(np.mean(gen)) if gen else None,
                           und_n=len(und), gen_n=len(gen))  # fmt: skip
        if und and gen:
            mirt = api.score([records], method="mirt", n_boot=n_boot).mirt
            est = next((e for e in mirt.estimates if e.group == "Overall"), None) if mirt else None
            if est is not None:
                point.gap = est.gap
                point.gap_low = est.ci_low if est.ci_low is not None else est.wald_low
                point.gap_high = est.ci_high if est.ci_high is not None else est.wald_high
        points.append(point)
        if progress:
            cols = {c.key: c for c in CURVE_COLUMNS}
            shown = {k: number(getattr(point, k), cols[k]) for k in ("und", "gen", "gap")}
            progress(f"step {step}: und {shown['und']}, gen {shown['gen']}, gap {shown['gap']}")
    lag = _lag(points, per_item, fraction, n_boot, seed)
    result = CurveResult(suite=suite, points=points, lag=lag, files=[])
    files = _write(folder, result)
    # One report over every checkpoint (each a "model" of the leaderboard), the curves shown first.
    site = api.report_site([p.run for p in points], out=folder / "report", fragility_n=0, n_boot=n_boot,
                           extra_charts=[folder / "curve.svg"], suite=loaded)  # fmt: skip
    files.append(site.index)
    result.files = [str(f) for f in files]
    return result


def _lag(
    points: list[CurvePoint], per_item: list[dict[tuple[str, Direction], float]], fraction: float,
    n_boot: int, seed: int,
) -> Lag | None:  # fmt: skip
    if any(p.und is None or p.gen is None for p in points):
        return None
    steps = np.array([p.step for p in points], dtype=float)
    und = np.array([p.und for p in points], dtype=float)
    gen = np.array([p.gen for p in points], dtype=float)
    s_u, s_g = lag_of(steps, und, gen, fraction)
    # Items decided in both directions at every checkpoint: each resample draws from the same items.
    items = sorted(set.intersection(*({i for (i, d) in s if d is Direction.UND} & {i for (i, d) in s
                   if d is Direction.GEN} for s in per_item)))  # fmt: skip
    low = high = share = None
    if n_boot and items:
        u = np.array([[s[(i, Direction.UND)] for i in items] for s in per_item])
        g = np.array([[s[(i, Direction.GEN)] for i in items] for s in per_item])
        boots = bootstrap_lag(steps, u, g, fraction, n_boot, seed)
        low, high = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
        share = float(np.mean(boots > 0))
    return Lag(fraction=fraction, und_step=s_u, gen_step=s_g, lag=s_g - s_u, low=low, high=high,
               share_positive=share, n_boot=n_boot if items else 0)  # fmt: skip


def _write(folder: Path, result: CurveResult) -> list[Path]:
    points, lag = result.points, result.lag
    table = folder / "curve.csv"
    table.write_text(to_csv(result.table()), encoding="utf-8")
    data = folder / "curve.json"
    data.write_text(json.dumps({"suite": result.suite, "points": [p.model_dump() for p in points],
                                "lag": lag.model_dump() if lag else None}, indent=2))  # fmt: skip
    chart = figures.checkpoint_curves(
        [p.step for p in points], [p.und for p in points], [p.gen for p in points],
        [(p.gap, p.gap_low, p.gap_high) for p in points],
        (lag.und_step, lag.gen_step, lag.fraction) if lag else None, folder,
    )  # fmt: skip
    return [table, data, folder / chart, folder / chart.replace(".svg", ".png")]
