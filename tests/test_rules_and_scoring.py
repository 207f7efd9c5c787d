"""Rule judges on hand-made answers, joint tables, and the score command end to end."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image
from tests.conftest import invoke, run_replay

from gapeval.items import Category, Direction, GenerationTask, ImageRef, Item, References, UnderstandingTask
from gapeval.judges.rules import extract_option, judge_image, judge_text, stated_count
from gapeval.records import VerdictStatus
from gapeval.scoring.joint import group_score


def item(**refs: object) -> Item:
    return Item(
        id="i",
        category=Category.REASONING,
        und=UnderstandingTask(prompt="q"),
        gen=GenerationTask(prompt="g"),
        refs=References(**refs),
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("Answer: (B)", "B"),
        ("The answer is C.", "C"),
        ("I first thought A. Final answer: D", "D"),
        ("\\boxed{A}", "A"),
        ("Option B", "B"),
        ("B", "B"),
        ("It is the middle one.", None),
        ("Answer: A\nWait, re-checking... the answer is C", "C"),
    ],
)
def test_final_explicit_option(text, option) -> None:
    assert extract_option(text) == option


def test_choice_judge() -> None:
    assert judge_text(item(choice="B"), "Answer: B").passed is True
    wrong = judge_text(item(choice="B"), "Answer: A")
    assert wrong.passed is False and "expected B" in wrong.reason
    assert judge_text(item(choice="B"), "no idea").passed is False


def test_counting_judge() -> None:
    spec = item(counts={"red circle": 2, "blue square": 1})
    assert judge_text(spec, "There are 2 red circles and 1 blue square.").passed is True
    assert judge_text(spec, "There are two red circles and one blue square.").passed is True
    assert judge_text(spec, "red circles: 2, blue squares: 1").passed is True
    bad = judge_text(spec, "I count 3 red circles and 1 blue square.")
    assert bad.passed is False and "said 3" in bad.reason
    assert judge_text(spec, "2 red circles").passed is False  # the square is not stated
    assert stated_count("Earlier 2 cats; final: 4 cats", "cat") == 4


def test_number_and_short_text_and_abstain() -> None:
    assert judge_text(item(text="4"), "So there are 4 shapes.").passed is True
    assert judge_text(item(text="4"), "Answer: 5").passed is False
    assert judge_text(item(text="left"), "The square is now on the left.").passed is True
    assert judge_text(item(text="left"), "It is on the right.").passed is False
    long = judge_text(item(text="a long free text reference that only a model could judge well"), "x")
    assert long.status is VerdictStatus.ABSTAIN
    assert judge_text(item(), "anything").status is VerdictStatus.ABSTAIN


def test_image_rules(tmp_path) -> None:
    src, ref, new = tmp_path / "in.png", tmp_path / "ref.png", tmp_path / "new.png"
    Image.new("RGB", (20, 20), "red").save(src)
    Image.new("RGB", (20, 20), "blue").save(ref)
    Image.new("RGB", (20, 20), "green").save(new)
    edit = Item(
        id="e",
        category=Category.INSTRUCTION_FOLLOWING,
        und=UnderstandingTask(prompt="q"),
        gen=GenerationTask(prompt="g", input_image=ImageRef.from_file(src)),
        refs=References(image=ImageRef.from_file(ref)),
    )
    unchanged = judge_image(edit, str(src))
    assert unchanged.passed is False and "unchanged" in unchanged.reason
    assert judge_image(edit, str(ref)).passed is False
    assert judge_image(edit, str(new)).status is VerdictStatus.ABSTAIN


def test_joint_counts_from_item_scores() -> None:
    scores = {
        ("a", Direction.UND): 1.0,
        ("a", Direction.GEN): 1.0,
        ("b", Direction.UND): 1.0,
        ("b", Direction.GEN): 0.0,
        ("c", Direction.UND): 0.0,
        ("c", Direction.GEN): 1.0,
        ("d", Direction.UND): 0.0,
        ("d", Direction.GEN): 0.0,
        ("e", Direction.UND): 1.0,  # generation missing: not paired, not wrong
        ("f", Direction.UND): 0.5,
        ("f", Direction.GEN): 0.5,
    }
    g = group_score(["a", "b", "c", "d", "e", "f"], scores)
    assert g.n_paired == 5 and g.missing == 1
    assert (g.joint.both, g.joint.und_only, g.joint.gen_only, g.joint.neither) == (1.25, 1.25, 1.25, 1.25)
    assert g.und_acc == pytest.approx(3.5 / 6) and g.gen_acc == pytest.approx(2.5 / 5)
    assert g.succ == pytest.approx(0.25) and g.consistency == pytest.approx(0.5)


def test_sample_run_scores_end_to_end(cli, sample_tree, tmp_path) -> None:
    out = tmp_path / "r"
    code, stdout, _ = run_replay(cli, sample_tree, out, "-j", "recorded", "--fragility", "2")
    assert code == 0
    assert "Overall" in stdout and "±frag" in stdout and str(out) in stdout
    code, stdout, _ = invoke(
        cli, "score", str(out), "--method", "reference", "--format", "json", "--fragility", "0"
    )
    data = json.loads(stdout)
    run = data["runs"][0]
    cats = run["categories"]
    assert set(cats) == {c.value for c in Category}
    # hand-checked from the sample tree: counting und = [right, wrong]; gen: cnt-2 unchanged -> rules fail,
    # cnt-1 recorded fail
    npc = cats["Numerical Perception"]
    assert npc["und_acc"] == 0.5 and npc["gen_acc"] == 0.0 and npc["n_paired"] == 2
    rs = cats["Reasoning"]
    # rs-1 right (B), rs-2 wrong (A), rs-3 recorded right, ph-1 recorded right, ph-2 rules right (4)
    assert rs["und_acc"] == 0.8 and rs["und_n"] == 5
    # rule-3's image failed to generate: missing, not wrong
    ifc = cats["Instruction Following"]
    assert ifc["gen_n"] == 2 and ifc["missing"] == 1
    board = data["leaderboard"]
    overall = next(r for r in board if r["category"] == "Overall")
    assert overall["und"] == pytest.approx(100 * run["overall"]["und_acc"], abs=0.01)
    assert all(r["gap"] is not None for r in board)
    # judge precedence changes the numbers: rules alone leaves the free-text items undecided
    code, stdout, _ = invoke(
        cli, "score", str(out), "--judge", "rules", "--format", "json", "--fragility", "0"
    )
    assert json.loads(stdout)["runs"][0]["overall"]["und_n"] < run["overall"]["und_n"]
    code, stdout, _ = invoke(
        cli, "score", str(out), str(out), "--method", "reference", "--format", "csv", "--fragility", "0"
    )
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == 10 and {"p_both", "p_und_only", "p_gen_only", "p_neither", "gap"} <= set(rows[0])
    code, stdout, _ = invoke(
        cli, "score", str(out), str(out), "--method", "reference", "--coupling", "models", "--fragility", "0"
    )
    assert code == 0 and "appendix" in stdout


def test_score_rejects_a_non_run(cli, tmp_path) -> None:
    code, _, err = invoke(cli, "score", str(tmp_path))
    assert code == 2 and "not a run directory" in err


def test_listing_commands(cli) -> None:
    code, out, _ = invoke(cli, "models", "--json")
    assert code == 0 and "replay" in json.loads(out)["models"] and "rules" in json.loads(out)["judges"]
    from gapeval.suites import available_suites

    code, out, _ = invoke(cli, "suites")
    listed = {line.split("  ", 1)[0]: line.split("  ", 1)[1] for line in out.splitlines()[:-1]}
    assert code == 0 and listed == available_suites() and "shapes-v1-mini" in listed
