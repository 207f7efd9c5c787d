"""The identified gap: exact single-model reduction, recovery, missing data, determinism, R agreement."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr
from tests.conftest import DATA, invoke

from gapeval.errors import GapevalError
from gapeval.scoring.gap_analysis import analyse, bootstrap, holm
from gapeval.scoring.mirt import Responses, fit
from gapeval.scoring.responses import read_csv, write_csv


def simulate(seed: int, m: int, j: int = 646) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=m)
    easy = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=j)
    p = 1 / (1 + np.exp(-(theta[:, None, :] + easy[None])))
    return (rng.random(p.shape) < p).astype(float), theta[:, 0] - theta[:, 1]


def responses(y: np.ndarray) -> Responses:
    return Responses(
        [f"m{i}" for i in range(y.shape[0])],
        [f"q{j}" for j in range(y.shape[1])],
        y,
        ["A", "B", "C", "D"] * (y.shape[1] // 4) + ["A"] * (y.shape[1] % 4),
    )


def test_single_model_reduces_to_the_conditional_estimate() -> None:
    # one model, questions with one shared easiness (the single-model structure)
    rng = np.random.default_rng(3)
    easy = rng.normal(0, 1.5, size=646)
    p = 1 / (1 + np.exp(-(np.array([0.4, -0.3])[None, :] + easy[:, None])))
    y = (rng.random(p.shape) < p).astype(float)[None]
    res = fit(y)
    assert res.structure == "shared"
    u, g = y[0, :, 0], y[0, :, 1]
    n10, n01 = float(np.sum(u * (1 - g))), float(np.sum((1 - u) * g))
    assert res.gap[0] == pytest.approx(math.log(n10 / n01), abs=1e-4)
    assert res.converged


def test_single_model_with_negative_association_sits_on_the_boundary() -> None:
    # When right answers in one direction go with wrong ones in the other (odds ratio < 1), no shared
    # question effect reproduces the cells: the spread goes to zero and the gap is the difference of the
    # marginal logits, no longer log(n10 / n01).
    y = np.zeros((1, 400, 2))
    y[0, :150, 0] = 1  # und right, gen wrong
    y[0, 150:190, 1] = 1  # und wrong, gen right
    y[0, 190:200] = 1  # both right
    res = fit(y)
    pu, pg = 160 / 400, 50 / 400
    assert res.sd[0] < 1e-3
    assert res.gap[0] == pytest.approx(math.log(pu / (1 - pu)) - math.log(pg / (1 - pg)), abs=1e-3)


def test_recovers_simulated_gaps() -> None:
    y, gap = simulate(11, 8)
    res = fit(y)
    assert np.corrcoef(res.gap, gap)[0, 1] > 0.95
    assert np.sqrt(np.mean((res.gap - gap) ** 2)) < 0.25
    assert res.se_gap is not None and np.all((res.se_gap > 0.05) & (res.se_gap < 0.3))


def test_missing_and_fractional_responses() -> None:
    y, _ = simulate(5, 6)
    full = fit(y)
    holes = y.copy()
    holes[np.random.default_rng(0).random(y.shape) < 0.15] = np.nan
    part = fit(holes)
    assert part.converged
    assert np.all(np.abs(part.gap - full.gap) < 4 * np.asarray(full.se_gap))
    # one model that never answered generation on half the questions still gets a gap
    holes[0, :300, 1] = np.nan
    assert np.isfinite(fit(holes).gap).all()
    # fractional responses (shares of judge samples) are accepted
    frac = np.clip(y * 0.9 + 0.05, 0, 1)
    assert np.isfinite(fit(frac).gap).all()


def test_deterministic_and_stable_under_tiny_perturbations() -> None:
    y, _ = simulate(7, 5)
    a, b = fit(y), fit(y)
    assert np.array_equal(a.gap, b.gap)
    data = responses(y)
    g1, _ = bootstrap(data, a, 10, seed=4)
    g2, _ = bootstrap(data, a, 10, seed=4)
    assert np.array_equal(g1, g2)
    noisy = np.clip(y + np.random.default_rng(1).normal(0, 1e-6, y.shape), 0, 1)
    assert np.abs(fit(noisy).gap - a.gap).max() < 1e-4


def test_matches_r_mirt_on_reference_data() -> None:
    folder = DATA / "mirt_B9_s1"
    raw = np.loadtxt(folder / "responses.csv", delimiter=",", skiprows=1)
    half = raw.shape[1] // 2
    res = fit(np.stack([raw[:, :half], raw[:, half:]], axis=2), with_se=False)
    r = json.loads((folder / "R_mirt_transposed_rasch.json").read_text())
    assert np.abs(res.gap - (np.array(r["theta_und"]) - np.array(r["theta_gen"]))).max() < 0.02


def test_analysis_reports_intervals_tests_and_diagnostics() -> None:
    y, _ = simulate(21, 6, j=400)
    y[2, :, 1] = y[2, :, 0]  # model 2: identical answers both ways -> no discordant pairs
    out = analyse(responses(y), n_boot=40)
    overall = [e for e in out.estimates if e.group == "Overall"]
    assert len(overall) == 6 and {e.group for e in out.estimates} == {"Overall", "A", "B", "C", "D"}
    assert all(e.ci_low is not None and e.ci_low <= e.gap <= e.ci_high for e in overall)
    m2 = overall[2]
    assert m2.n10 == m2.n01 == 0 and m2.p_nogap == 1.0 and abs(m2.gap) < 0.05
    assert all(e.p_adjusted is not None and e.p_adjusted >= e.p_nogap for e in out.estimates)
    assert len(out.item_fit) == 10 and len(out.model_fit) == 6
    assert out.ability_correlation is not None and all(f.converged for f in out.fits)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_tidy_csv_round_trip_and_errors(tmp_path) -> None:
    y, _ = simulate(2, 3, j=20)
    y[1, 4, 0] = np.nan
    data = responses(y)
    path = write_csv(data, tmp_path / "r.csv")
    back = read_csv(path)
    assert back.models == data.models and sorted(back.items) == sorted(data.items)
    order = [back.items.index(i) for i in data.items]
    assert np.array_equal(np.isnan(back.y[:, order]), np.isnan(data.y))
    bad = tmp_path / "bad.csv"
    bad.write_text("model,item,category,direction,y\nm,q,A,sideways,1\n")
    with pytest.raises(GapevalError) as info:
        read_csv(bad)
    assert info.value.field == "direction" and info.value.file.endswith("bad.csv:2")


def test_score_and_correlate_commands(cli, tmp_path) -> None:
    y, gap = simulate(9, 5, j=200)
    path = write_csv(responses(y), tmp_path / "resp.csv")
    code, out, _ = invoke(cli, "score", "--responses", str(path), "--boot", "20", "--format", "json")
    assert code == 0
    est = json.loads(out)["mirt"]["estimates"]
    assert len([e for e in est if e["group"] == "Overall"]) == 5
    code, out, _ = invoke(cli, "score", "--responses", str(path), "--boot", "20")
    assert code == 0 and "Identified gap" in out and "p (Holm)" in out
    scores = tmp_path / "ext.csv"
    scores.write_text("model,realunify\n" + "\n".join(f"m{i},{g * 10 + i * 0.01}" for i, g in enumerate(gap)))
    code, out, _ = invoke(cli, "correlate", str(scores), "--responses", str(path), "--boot", "200", "--json")
    assert code == 0
    res = json.loads(out)[0]
    # the correlation is that of the fitted gaps with the external column, computed independently
    fitted = fit(read_csv(path), with_se=False).gap
    external = [g * 10 + i * 0.01 for i, g in enumerate(gap)]
    assert res["score"] == "realunify" and res["n_models"] == 5
    assert res["spearman"] == pytest.approx(spearmanr(fitted, external).statistic, abs=1e-12)
    assert res["kendall"] == pytest.approx(kendalltau(fitted, external).statistic, abs=1e-12)
    assert res["spearman_ci"][0] <= res["spearman"] <= res["spearman_ci"][1]
