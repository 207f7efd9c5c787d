"""Judges you can trust: an audit of a judge's error per direction, and the scores corrected for it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import invoke
from gapeval import api
from gapeval.errors import GapevalError
from gapeval.scoring import mirt
from gapeval.scoring.judge_error import correct_joint, rogan_gladen, wilson

HARSH = "noisy:und=0.95/0.05,gen=0.7/0.2"  # misses right images far more often than right answers
EVEN = "noisy:und=0.8/0.1,gen=0.8/0.1"  # errs alike both ways


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """The built-in model on the mini world, judged exactly (scene) and by two noisy judges."""
    from typer.testing import CliRunner

    cli, root = CliRunner(), tmp_path_factory.mktemp("audit")
    run = root / "run"
    code, _, err = invoke(cli, "run", "shapes-v1-mini", "-m", "toy", "-o", str(run), "--no-html",
                          "--fragility", "0", "--boot", "0")  # fmt: skip
    assert code == 0, err
    for judge in (HARSH, EVEN):
        code, _, err = invoke(cli, "judge", str(run), "-j", judge)
        assert code == 0, err
    return cli, root, run


def _rates(spec: str) -> dict[str, tuple[float, float]]:
    return {d: tuple(float(x) for x in v.split("/")) for d, v in (p.split("=") for p in spec[6:].split(","))}


def test_an_audit_against_the_exact_judge_recovers_the_known_error_rates(judged) -> None:
    cli, root, run = judged
    code, out, err = invoke(cli, "audit", str(run), "-j", "noisy:und=0.95", "--truth", "scene", "-o",
                            str(root / "harsh.json"))  # fmt: skip
    assert code == 2 and "has not judged this run" in err  # a judge id the run does not hold
    code, out, err = invoke(
        cli, "audit", str(run), "-j", HARSH, "--truth", "scene", "-o", str(root / "harsh.json")
    )
    assert code == 0, err
    audit = json.loads((root / "harsh.json").read_text())
    assert audit["judge"] == HARSH and audit["truth"] == "scene"
    for direction, (sens, false_pass) in _rates(HARSH).items():
        row = next(r for r in audit["rows"] if r["direction"] == direction and r["category"] == "Overall")
        assert row["tp"] + row["fn"] + row["fp"] + row["tn"] == {"und": 96, "gen": 192}[direction]
        assert row["sensitivity"]["low"] <= sens <= row["sensitivity"]["high"], row
        assert row["specificity"]["low"] <= 1 - false_pass <= row["specificity"]["high"], row
    sensitivity = next(b for b in audit["bias"] if b["rate"] == "sensitivity")
    assert sensitivity["low"] > 0 and sensitivity["p"] < 0.05  # harsher on images: detected
    assert "the judge errs differently in the two directions" in " ".join(out.split())


def test_a_judge_that_errs_alike_both_ways_shows_no_bias(judged) -> None:
    _, root, run = judged
    res = api.audit(run, judge="noisy:und=0.8/0.1,gen=0.8/0.1", truth="scene", out=root / "even.json")
    for b in res.audit.bias:
        assert b.p is not None and b.p > 0.05 and b.low is not None and b.low <= 0 <= b.high, b


def test_the_corrected_scores_move_to_the_exact_judges(judged) -> None:
    _, root, run = judged
    audit = api.audit(run, judge=HARSH, truth="scene", out=root / "harsh2.json")
    exact = api.score([run], judges=["scene"], n_boot=0)
    noisy = api.score([run], judges=[HARSH], n_boot=0, judge_audit=audit.path)
    truth, raw, (fixed,) = exact.runs[0].overall, noisy.runs[0].overall, noisy.corrected
    # The audit covers every output the scores are made of, so Rogan-Gladen gives back the exact shares.
    assert raw.gen_acc is not None and truth.gen_acc is not None and abs(raw.gen_acc - truth.gen_acc) > 0.2
    assert fixed.und == pytest.approx(truth.und_acc, abs=1e-9) and fixed.gen == pytest.approx(
        truth.gen_acc, abs=1e-9
    )
    # the joint table assumes the judge's errors independent across the directions: near, not exact
    exact_joint = np.array(exact.leaderboard[-1].joint)
    assert (
        np.abs(np.array(fixed.joint) - exact_joint).sum()
        < np.abs(np.array(fixed.joint_raw) - exact_joint).sum() / 4
    )
    exact_gap = next(e.gap for e in exact.mirt.estimates if e.group == "Overall")
    assert fixed.low is None  # no resamples asked for
    with_ci = api.score([run], judges=[HARSH], n_boot=100, judge_audit=audit.path).corrected[0]
    assert with_ci.low <= exact_gap <= with_ci.high, with_ci
    assert abs(with_ci.gap - exact_gap) < 0.1 < abs(with_ci.gap_raw - exact_gap)


def test_people_labels_audit_like_the_exact_judge(judged, tmp_path) -> None:
    cli, _, run = judged
    with api.writable_run(run, "test") as store:
        outputs = store.outputs()
        verdicts = {v.output_key: v for v in store.verdicts("scene")}  # identical outputs share one
    # what a person would write down, output by output
    rows = [(o.item_id, str(o.direction), o.sample, "pass" if verdicts[o.output_key].passed else "fail")
            for o in outputs]  # fmt: skip
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as fh:
        csv.writer(fh).writerows([("item_id", "direction", "sample", "label"), *rows])
    by_people = api.audit(run, judge=HARSH, truth=str(labels), out=tmp_path / "a.json").audit
    by_scene = api.audit(run, judge=HARSH, truth="scene", out=tmp_path / "b.json").audit
    assert [r.model_dump() for r in by_people.rows] == [r.model_dump() for r in by_scene.rows]

    # labels for outputs the run does not hold are counted and left out; none matching is an error
    with labels.open("a", newline="") as fh:
        csv.writer(fh).writerow(("nosuch-item", "und", 0, "pass"))
    assert api.audit(run, judge=HARSH, truth=str(labels), out=tmp_path / "c.json").unmatched == 1
    stray = tmp_path / "stray.csv"
    stray.write_text("item_id,direction,sample,label\nnosuch-item,und,0,pass\n")
    code, _, err = invoke(cli, "audit", str(run), "-j", HARSH, "--truth", str(stray))
    assert code == 2 and err.startswith(f"error: {stray}:2: field 'item_id': no label names an output")
    short = tmp_path / "short.csv"
    short.write_text("item_id,direction,sample,label\nsv1-0000,und,0\n")
    code, _, err = invoke(cli, "audit", str(run), "-j", HARSH, "--truth", str(short))
    assert code == 2 and err.startswith(f"error: {short}:2") and len(err.strip().splitlines()) == 1
    twice = tmp_path / "twice.csv"
    twice.write_text(f"item_id,direction,sample,label\n{rows[0][0]},und,0,pass\n{rows[0][0]},und,0,fail\n")
    code, _, err = invoke(cli, "audit", str(run), "-j", HARSH, "--truth", str(twice))
    assert (
        code == 2 and err.startswith(f"error: {twice}:3: field 'item_id': output") and "labelled twice" in err
    )


def test_an_audit_with_no_overlap_is_one_line(judged, tmp_path) -> None:
    cli, _, run = judged
    api.judge(run, ["rules"])  # rules has no rule for a drawing of the world: it abstains on every image
    with api.writable_run(run, "test") as store:
        gen = next(o for o in store.outputs() if str(o.direction) == "gen")
    labels = tmp_path / "gen.csv"
    labels.write_text(f"item_id,direction,sample,label\n{gen.item_id},gen,{gen.sample},pass\n")
    code, _, err = invoke(cli, "audit", str(run), "-j", "rules", "--truth", str(labels))
    assert code == 2 and err.strip() == (
        f"error: {run}: field '--truth': no output is decided both by rules and by {labels}"
    )


def test_score_and_report_show_the_corrected_gap(judged) -> None:
    cli, root, run = judged
    api.audit(run, judge=HARSH, truth="scene", out=root / "for-report.json")
    code, out, err = invoke(cli, "score", str(run), "-j", HARSH, "--boot", "20", "--judge-audit",
                            str(root / "for-report.json"))  # fmt: skip
    assert code == 0, err
    assert f"Corrected for the audited error of {HARSH}" in out
    code, out, err = invoke(cli, "report", str(run), "-o", str(root / "site"), "--fragility", "0",
                            "--boot", "20", "--judge-audit", str(root / "for-report.json"))  # fmt: skip
    assert code == 0, err
    page = (root / "site" / "index.html").read_text()
    assert 'id="t-corrected"' in page and (root / "site" / "tables" / "corrected.csv").is_file()
    # an audit of another judge than the one deciding the scores is refused
    code, _, err = invoke(
        cli, "score", str(run), "-j", "scene", "--judge-audit", str(root / "for-report.json")
    )
    assert code == 2 and "decides none of these scores" in err


def test_wilson_rogan_gladen_and_the_joint_correction() -> None:
    # Wilson's interval for 0 of 10 at 95%: [0, 0.2775] (Newcombe 1998, table I)
    r = wilson(0, 10)
    assert r.value == 0 and r.low == 0 and r.high == pytest.approx(0.2775, abs=1e-4)
    # observed 0.62 from truth 0.7 through sens 0.8, false-pass 0.1: 0.7 * 0.8 + 0.3 * 0.1 = 0.59
    assert rogan_gladen(0.59, 0.8, 0.1) == (pytest.approx(0.7), False)
    assert rogan_gladen(0.05, 0.8, 0.1) == (0.0, True)  # below the false-pass rate: clipped, flagged
    with pytest.raises(ValueError, match="no better than chance"):
        rogan_gladen(0.5, 0.4, 0.6)
    true = np.array([[0.5, 0.2], [0.1, 0.2]])
    rates = np.array([[0.9, 0.05], [0.7, 0.2]])
    mu, mg = (np.array([[s, f], [1 - s, 1 - f]]) for s, f in rates)
    observed = (mu @ true @ mg.T).reshape(-1)
    back, flagged = correct_joint(list(observed), rates)
    assert back == pytest.approx(true.reshape(-1).tolist()) and not flagged


def _judged_world(seed: int, rates: np.ndarray, j: int = 4000) -> np.ndarray:
    """One model answering j questions (true gap 0.8 logit), seen through a judge with these rates."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 1.0, j)
    right = np.stack(
        [rng.random(j) < 1 / (1 + np.exp(-(1.0 + e))), rng.random(j) < 1 / (1 + np.exp(-(0.2 + e)))], 1
    )
    return np.where(right, rng.random((j, 2)) < rates[:, 0], rng.random((j, 2)) < rates[:, 1]).astype(float)[
        None
    ]


def test_the_misclassification_layer_has_exact_gradients_and_undoes_the_judge() -> None:
    rates = np.array([[0.95, 0.05], [0.7, 0.2]])  # harsher on images
    obj = mirt._Objective(_judged_world(0, rates), "shared", 41, None, rates)
    x = obj.start() + 0.1
    numeric = np.array([(obj(x + h)[0] - obj(x - h)[0]) / 2e-6 for h in np.eye(len(x)) * 1e-6])
    assert np.abs(numeric - obj(x)[1]).max() < 1e-4
    fits = [
        (mirt.fit(y, misclass=rates), mirt.fit(y, with_se=False))
        for y in map(lambda k: _judged_world(k, rates), range(8))
    ]
    corrected = np.mean([float(c.gap[0]) for c, _ in fits])
    raw = np.mean([float(r.gap[0]) for _, r in fits])
    se = np.mean([float(c.se_gap[0]) for c, _ in fits]) / np.sqrt(len(fits))  # of the mean over 8 worlds
    assert abs(corrected - 0.8) < 3 * se < 0.1 < abs(raw - 0.8)


def test_a_noisy_judge_needs_both_directions_rates(judged) -> None:
    _, _, run = judged
    with pytest.raises(GapevalError, match="noisy needs rates for gen"):
        api.judge(run, ["noisy:und=0.9/0.1"])
    with pytest.raises(GapevalError, match="lie in"):
        api.judge(run, ["noisy:und=0.9/0.1,gen=1.5/0"])


def test_agreement_in_the_papers_terms_per_direction(judged) -> None:
    cli, root, run = judged
    code, out, err = invoke(cli, "agreement", str(run), "-j", "scene", "-j", HARSH, "-j", EVEN, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["raters"] == ["scene", HARSH, EVEN] and len(res["pairs"]) == 9  # 3 pairs x (all, und, gen)
    assert res["units"] == {"all": 192, "und": 96, "gen": 96}
    und = next(
        p for p in res["pairs"] if (p["first"], p["second"], p["direction"]) == ("scene", HARSH, "und")
    )
    # one answer per item: the per-item kappa is the audit's per-output kappa
    audit = api.audit(run, judge=HARSH, truth="scene", out=root / "k.json").audit
    assert und["kappa"] == pytest.approx(audit.overall("und").kappa)
    assert res["alpha"]["gen"] < res["alpha"]["und"]  # the harsh judge parts from the others on images
    code, out, _ = invoke(cli, "agreement", str(run), "-j", "scene", "-j", HARSH)
    assert code == 0 and "Krippendorff's alpha (nominal) over all raters: all " in " ".join(out.split())
    code, _, err = invoke(cli, "agreement", str(run), "-j", "scene")
    assert code == 2 and "give two raters or more" in err


def test_krippendorffs_own_example() -> None:
    from gapeval.judges.agreement import krippendorff_alpha

    n = np.nan  # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": nominal alpha 0.743
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]  # fmt: skip
    assert krippendorff_alpha(np.array(data)) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(np.array([[1, 1, 1], [1, 1, 1]])) is None  # no disagreement possible


def test_a_labelling_sample_from_a_fresh_folder(judged, tmp_path, monkeypatch) -> None:
    cli, _, run = judged
    monkeypatch.chdir(run.parent)
    code, out, err = invoke(cli, "audit", run.name, "--sample", "20", "-j", "noisy:und=0.95", "--seed", "4")
    assert code == 2 and "has not judged this run" in err
    code, out, err = invoke(cli, "audit", run.name, "--sample", "20", "-j", HARSH, "--seed", "4",
                            "-o", str(tmp_path / "lab"))  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "lab" / "sample.csv").open()))
    # equal shares over the 8 strata (direction x category): 20 = 3 each, then one more in four
    per = {}
    for r in rows:
        per[(r["direction"], r["category"])] = per.get((r["direction"], r["category"]), 0) + 1
    assert len(rows) == 20 and sorted(per.values()) == [2, 2, 2, 2, 3, 3, 3, 3]
    assert (tmp_path / "lab" / "index.html").is_file() and "labels for sens." in out
    data = (tmp_path / "lab" / "data.js").read_text()
    assert '"start": true' in data
    # the same seed draws the same sample; a plan of 97 per rate at width 0.2 (95%)
    res = api.label_sample(run, 20, judge=HARSH, seed=4, out=tmp_path / "again")
    assert [tuple(x) for x in res.plan.sample] == [
        (r["item_id"], r["direction"], int(r["sample"])) for r in rows
    ]
    assert res.plan.per_rate == 97
    for bad, field in (
        (["--sample", "0"], "--sample"),
        (["--sample", "5", "--width", "1.5"], "--width"),
        ([], "--truth"),
    ):
        code, _, err = invoke(cli, "audit", run.name, "-j", HARSH, *bad)
        assert code == 2 and field in err and len(err.strip().splitlines()) == 1, err


def test_labels_of_another_model_are_refused_naming_the_column(judged, tmp_path) -> None:
    cli, _, run = judged
    labels = tmp_path / "labels.csv"
    labels.write_text("item_id,direction,sample,label,model\nx,und,0,pass,someone-else\n")
    code, _, err = invoke(cli, "audit", str(run), "-j", HARSH, "--truth", str(labels))
    assert code == 2 and "labels.csv" in err and "model" in err and "someone-else" in err


def test_a_vlm_judge_is_audited_on_the_built_in_world_in_one_command(tmp_path, monkeypatch) -> None:
    """`gapeval audit shapes-v2-mini -j openai:M --base-url URL` from an empty folder.

    It runs, judges both ways and audits; the VLM judge sees each target's reference image (v2).
    """
    from typer.testing import CliRunner

    from gapeval.testing.openai_server import ScriptedServer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-audit")
    with ScriptedServer() as srv:  # passes everything
        code, _, err = invoke(CliRunner(), "audit", "shapes-v2-mini", "-j", "openai:vlm-under-audit",
                                "--base-url", srv.base_url)  # fmt: skip
    assert code == 0, err
    audit = json.loads(
        next((tmp_path / "runs" / "audit-shapes-v2-mini" / "audits").glob("*.json")).read_text()
    )
    for row in (r for r in audit["rows"] if r["category"] == "Overall"):
        # a judge that passes everything: every right output passed, every wrong one passed too
        assert row["sensitivity"]["value"] == 1.0 and row["fn"] == 0 and row["tn"] == 0
        assert row["tp"] + row["fp"] == 96  # one answer and one image per item
    world_knowledge_images = [
        sum(1 for p in b["messages"][1]["content"] if p["type"] == "image_url")
        for b in srv.requests
        if "text-to-image results for multi-hop" in b["messages"][0]["content"]
    ]
    assert world_knowledge_images and set(world_knowledge_images) == {2}


def _category_world(seed: int, j: int = 4000) -> tuple[mirt.Responses, np.ndarray, dict[str, np.ndarray]]:
    """Two categories, one hard whose images the judge is harsh on, one easy it judges fairly.

    True gap 0.8 logit everywhere; returns the judged responses and the audit's confusion counts overall
    and per category (here the audit covers every output).
    """
    rng = np.random.default_rng(seed)
    cat = np.arange(j) % 2
    e = rng.normal(0, 1.0, j) + np.where(cat == 0, -1.0, 1.0)
    right = np.stack(
        [rng.random(j) < 1 / (1 + np.exp(-(1.0 + e))), rng.random(j) < 1 / (1 + np.exp(-(0.2 + e)))], 1
    )
    harsh, fair = np.array([[0.95, 0.05], [0.5, 0.1]]), np.array([[0.95, 0.05], [0.95, 0.1]])
    rates = np.where(cat[:, None, None] == 0, harsh, fair)
    seen = np.where(right, rng.random((j, 2)) < rates[:, :, 0], rng.random((j, 2)) < rates[:, :, 1])

    def counts(idx: np.ndarray) -> np.ndarray:
        r, o = right[idx], seen[idx]
        return np.array([[np.sum(r[:, d] & o[:, d]), np.sum(r[:, d] & ~o[:, d]), np.sum(~r[:, d] & o[:, d]),
                          np.sum(~r[:, d] & ~o[:, d])] for d in range(2)], dtype=float)  # fmt: skip

    names = ["hard" if c == 0 else "easy" for c in cat]
    data = mirt.Responses(["m"], [f"q{i}" for i in range(j)], seen.astype(float)[None], names)
    whole = np.arange(j)
    return data, counts(whole), {n: counts(np.flatnonzero(cat == k)) for k, n in enumerate(("hard", "easy"))}


def test_correcting_per_category_fits_each_category_with_its_own_rates() -> None:
    from gapeval.scoring.judge_error import corrected_scores

    gaps: dict[str, list[float]] = {"hard": [], "easy": []}
    for seed in range(6):
        data, overall, per = _category_world(seed)
        rows = corrected_scores(data, overall, n_boot=0, by_category=per)
        assert [r.group for r in rows] == ["Overall", "easy", "hard"] and all(not r.pooled for r in rows)
        for r in rows[1:]:
            gaps[r.group].append(r.gap)
    for group, values in gaps.items():
        se = np.std(values) / np.sqrt(len(values))
        assert abs(np.mean(values) - 0.8) < 3 * se + 0.05, (group, values)
    # a category the audit cannot estimate (no truly wrong output there) is corrected with the overall rates
    data, overall, per = _category_world(0)
    per["easy"][:, 2:] = 0
    rows = corrected_scores(data, overall, n_boot=0, by_category=per)
    assert next(r for r in rows if r.group == "easy").pooled == ["und", "gen"]


def test_score_corrects_per_category_on_request(judged) -> None:
    cli, root, run = judged
    code, _, err = invoke(cli, "audit", str(run), "-j", HARSH, "--truth", "scene", "-o", str(root / "h.json"))
    assert code == 0, err
    code, out, err = invoke(cli, "score", str(run), "-j", HARSH, "--judge-audit", str(root / "h.json"),
                            "--correct-by", "category", "--boot", "0", "-f", "json")  # fmt: skip
    assert code == 0, err
    groups = [c["group"] for c in json.loads(out)["corrected"]]
    assert groups == [
        "Overall",
        "Instruction Following",
        "Numerical Perception",
        "Reasoning",
        "World Knowledge",
    ]
    code, _, err = invoke(
        cli, "score", str(run), "--judge-audit", str(root / "h.json"), "--correct-by", "item"
    )
    assert code == 2 and "--correct-by" in err
