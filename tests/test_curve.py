"""Training dynamics over a checkpoint series: both curves, the gap per checkpoint, the lag."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from tests.conftest import invoke

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.experiments.curve import checkpoint_series, curve, reach_step
from gapeval.models.toy import shipped_checkpoint
from gapeval.toy.train import TrainConfig, train


def test_reach_step_interpolates_between_checkpoints() -> None:
    steps = np.array([0.0, 100.0, 200.0])
    # 90% of the final 1.0 is reached 80% of the way from step 100 (0.5) to step 200 (1.0).
    assert reach_step(steps, np.array([0.0, 0.5, 1.0]), 0.9) == pytest.approx(180.0)
    assert reach_step(steps, np.array([0.95, 0.97, 1.0]), 0.9) == 0.0  # there from the start
    assert reach_step(steps, np.array([0.0, 1.0, 1.0]), 1.0) == 100.0


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory):
    """Two early checkpoints of a short training run, then the shipped model as the last step."""
    folder = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(steps=40, batch_size=32, d_model=48, n_layers=2, n_heads=2, lr=3e-3, warmup=5,
                      checkpoint_every=20, chunk_items=256)  # fmt: skip
    train(folder, cfg)
    (folder / "final.pt").unlink()
    shutil.copy(shipped_checkpoint(), folder / "step_08000.pt")
    return folder


def test_curve_over_checkpoints_measures_both_directions_the_gap_and_the_lag(series, tmp_path, cli) -> None:
    assert [s for s, _ in checkpoint_series([series])] == [20, 40, 8000]
    res = curve([series], suite="shapes-v1-mini", out=tmp_path / "c", samples_gen=1, n_boot=50)
    steps = [p.step for p in res.points]
    assert steps == [20, 40, 8000]
    final = res.points[-1]
    assert final.und is not None and final.gen is not None and final.und > 0.5 and final.gen > 0.5
    assert (
        final.gap is not None and final.gap_low is not None and final.gap_low <= final.gap <= final.gap_high
    )
    lag = res.lag
    assert lag is not None and lag.n_boot == 50 and lag.low is not None and lag.low <= lag.lag <= lag.high
    assert 20 <= lag.und_step <= 8000 and 20 <= lag.gen_step <= 8000
    rows = list(csv.DictReader((tmp_path / "c" / "curve.csv").open()))
    assert [int(r["step"]) for r in rows] == steps
    assert (tmp_path / "c" / "curve.svg").stat().st_size > 1000 and (tmp_path / "c" / "curve.png").is_file()
    report = tmp_path / "c" / "report"
    assert (report / "figures" / "curve.svg").is_file() and 'src="figures/curve.svg"' in (
        report / "index.html"
    ).read_text()

    # Each checkpoint is an ordinary run: score reads it unchanged.
    scored = api.score([final.run], method="reference", fragility_n=0)
    assert scored.runs[0].overall.und_acc == pytest.approx(final.und)

    # The same series, seed and spec elsewhere give the same numbers (the runs are redone from scratch).
    again = curve([series], suite="shapes-v1-mini", out=tmp_path / "d", samples_gen=1, n_boot=50)
    assert [(p.und, p.gen, p.gap) for p in again.points] == [(p.und, p.gen, p.gap) for p in res.points]
    assert again.lag == res.lag

    # The command prints the table and the lag, and names what it wrote.
    code, out, err = invoke(cli, "curve", str(series), "--suite", "shapes-v1-mini", "-o", str(tmp_path / "c"),
                            "--samples-gen", "1", "--boot", "50")  # fmt: skip
    assert code == 0, err
    assert "lag at 90% of final accuracy" in out and "curve.svg" in out and "8000" in out


def test_a_curve_needs_two_checkpoints_and_a_checkpoint_slot(tmp_path) -> None:
    with pytest.raises(GapevalError, match="at least two"):
        curve([shipped_checkpoint()], out=tmp_path)
    with pytest.raises(GapevalError, match="checkpoint"):
        curve([shipped_checkpoint(), shipped_checkpoint()], model="toy", out=tmp_path)
