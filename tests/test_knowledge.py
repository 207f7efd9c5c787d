"""Knowledge injection and editing on the built-in model: specs, data, runners, analysis, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tests.conftest import invoke

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.experiments.knowledge import (
    KnowledgeSpec,
    Sampler,
    analyse,
    load_examples,
    load_spec,
    probe_specs,
    run_experiment,
)
from gapeval.items import Direction
from gapeval.models.toy import shipped_checkpoint
from gapeval.store import RunStore
from gapeval.suites.jsonl import load_jsonl
from gapeval.suites.shapes import tasks
from gapeval.toy.model import grow_vocabulary, und_prefix
from gapeval.toy.train import load_checkpoint, save_checkpoint

SMALL = {
    "experiment": "inject",
    "name": "small",
    "facts": [{"name": "brosk", "look": "red triangle"}, {"name": "quenna", "look": "green square"}],
    "arms": ["und", "gen"],
    "seeds": [0],
    "train": {"steps": 30, "per_direction": 8, "replay": 8},
    "eval": {"per_fact": 3, "locality": 6, "samples_gen": 1, "n_boot": 200},
}


def write_spec(folder: Path, spec: dict[str, object], name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_builtin_specs_load_and_name_what_they_teach() -> None:
    inject, _ = load_spec(None, "inject")
    edit, _ = load_spec(None, "edit")
    assert inject.model == "toy" and len(inject.facts) == 8 and inject.arms == ["und", "gen", "both"]
    assert all(f.name not in tasks.LOOKS for f in inject.facts)
    assert {f.name for f in edit.facts} <= set(tasks.ENTITIES)
    assert all(tasks.LOOKS[f.name] != f.obj for f in edit.facts)
    # The hash covers the normalised content: the same spec written differently hashes the same.
    same = KnowledgeSpec.model_validate(json.loads(inject.model_dump_json()))
    assert same.digest() == inject.digest() and len(inject.digest()) == 64


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"facts": [{"name": "brosk", "look": "red hexagon"}]}, "facts.0.look", "COLOUR SHAPE"),
        ({"facts": [{"name": "zorp", "look": "red circle"}]}, None, "already an entity"),
        ({"train": {"steps": 0}}, "train.steps", "greater than or equal to 1"),
        ({"arms": ["und", "sideways"]}, "arms.1", "'und', 'gen' or 'both'"),
        ({"experiment": "edit"}, None, "no entity of the world"),
        ({"surprise": 1}, "surprise", "extra inputs"),
    ],
)
def test_a_bad_spec_is_one_error_naming_the_file_and_field(tmp_path, change, field, message) -> None:
    path = write_spec(tmp_path, {**SMALL, **change})
    experiment = str(change.get("experiment", "inject"))
    with pytest.raises(GapevalError) as exc:
        load_spec(path, experiment)  # type: ignore[arg-type]
    assert exc.value.file == str(path) and exc.value.field == field and message in exc.value.message


def test_a_spec_of_the_other_experiment_and_broken_yaml_are_refused(tmp_path, cli) -> None:
    path = write_spec(tmp_path, SMALL)
    with pytest.raises(GapevalError, match="this is a inject spec"):
        load_spec(path, "edit")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: [inject\n")
    code, _, stderr = invoke(cli, "knowledge", "inject", str(bad), "-o", str(tmp_path / "x"))
    assert code != 0 and "not valid YAML" in stderr and str(bad) in stderr
    assert not (tmp_path / "x").exists()  # nothing is written for a spec that does not load


def test_growing_the_vocabulary_keeps_every_known_token_and_round_trips(tmp_path) -> None:
    model, vocab, tok, meta = load_checkpoint(shipped_checkpoint())
    prefix = torch.tensor([und_prefix(vocab, "where is the zorp", [0] * 9)])
    before = model(prefix)[0, -1]
    grown = grow_vocabulary(model, vocab, ["brosk", "zorp", "quenna"])  # zorp is known already
    assert grown.extra == ["brosk", "quenna"] and grown.size == vocab.size + 2
    assert grown.encode_text("where is the brosk")[-1] == vocab.size
    after = model(prefix)[0, -1]
    assert torch.allclose(after[: vocab.size], before, atol=1e-5)  # old ids, same logits
    save_checkpoint(tmp_path / "g.pt", model, grown, tok, meta)
    _, again, _, _ = load_checkpoint(tmp_path / "g.pt")
    assert again.extra == grown.extra and again.decode_text(again.encode_text("the quenna")) == "the quenna"


def test_edit_probes_ask_for_the_new_fact_beside_the_old_one_and_leave_locality_clean() -> None:
    spec, _ = load_spec(None, "edit")
    probes = probe_specs(spec, np.random.default_rng(0))
    edited = {f.name: f for f in spec.facts}
    kinds = {p: {s.kind for q, _, s in probes if q == p} for p in ("efficacy", "generalisation", "locality")}
    assert kinds["efficacy"] == {"entity"} and kinds["generalisation"] == {"pet", "pet_edit"}
    for probe, group, s in probes:
        if probe == "locality":
            assert s.extra.get("entity") not in edited
            continue
        fact = edited[group]
        assert s.gen_target[s.key[1]] == fact.obj  # the new look is what must be drawn
        assert tasks.LOOKS[group] in (s.und_scene or ())  # the old look is there as a distractor
        if probe == "generalisation":
            assert tasks.PETS[s.key[0]] == group  # asked through its owner, two hops


def test_analysis_bootstraps_entities_then_items_and_calls_transfer() -> None:
    probes = {f"t{i}": ("target", f"e{i % 3}") for i in range(6)} | {"l0": ("locality", "l0")}
    base = {(i, d): 0.0 for i in probes for d in Direction}
    und_arm = {**base, **{(f"t{i}", Direction.UND): 1.0 for i in range(6)}}
    gen_arm = {**base, **{(f"t{i}", Direction.GEN): 1.0 for i in range(6)}}
    gen_arm[("t0", Direction.UND)] = 1.0  # one item of the other direction moves
    cells = analyse({"baseline": base, "und": und_arm, "gen": gen_arm}, probes, "inject", 400, 0)

    def cell(arm: str, d: str):
        return next(c for c in cells if (c.arm, c.probe, c.direction) == (arm, "target", d))

    trained = cell("und", "und")
    assert trained.delta == 1.0 and (trained.low, trained.high) == (1.0, 1.0) and trained.p == 0.0
    assert trained.trained and trained.verdict == ""
    none = cell("und", "gen")
    assert none.delta == 0.0 and none.p == 1.0 and none.verdict == "none detected"
    some = cell("gen", "und")
    assert some.delta == pytest.approx(1 / 6) and some.low == 0.0 and some.verdict == "none detected"
    assert cell("baseline", "und").delta is None and cell("baseline", "und").acc == 0.0


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("inject")
    return run_experiment("inject", write_spec(folder, SMALL), out=folder / "out"), folder


def test_injection_runs_every_arm_as_an_ordinary_run_and_writes_its_results(small_run) -> None:
    res, folder = small_run
    out = folder / "out"
    assert [(r.arm, r.seed) for r in res.runs] == [("baseline", None), ("und", 0), ("gen", 0)]
    for r in res.runs[1:]:
        group = r.arm
        start, end = r.train["loss"][group]
        assert end < start, f"{group} loss did not go down: {start} -> {end}"
        assert r.train["steps"] == 30 and "replay" in r.train["loss"]
    # New names got their own tokens in the baseline, which every arm starts from.
    _, vocab, _, _ = load_checkpoint(out / "train" / "baseline.pt")
    assert vocab.extra == ["brosk", "quenna"]
    suite = load_jsonl(out / "eval")
    assert suite.name == "knowledge:small" and suite.judges == ("scene",)
    assert len(suite.items) == 2 * 3 + 6 and suite.defaults["samples_gen"] == 1
    # Each evaluation is an ordinary run: score reads it, and agrees with the analysis.
    base = res.cell("baseline", "target", "und")
    scored = api.score([res.runs[0].run], fragility_n=0, n_boot=0)
    assert scored.runs[0].overall.n_items == len(suite.items)
    target_ids = {i.id for i in suite.items if i.raw and i.raw["probe"] == "target"}
    with RunStore.open(Path(res.runs[0].run)) as store:
        verdicts = [v for v in store.verdicts() if v.item_id in target_ids and v.direction is Direction.UND]
    assert len(verdicts) == 6 and base.acc == pytest.approx(np.mean([bool(v.passed) for v in verdicts]))
    rows = list(csv.DictReader((out / "knowledge.csv").open()))
    assert len(rows) == len(res.cells) == 3 * 2 * 2 and {r["spec_hash"] for r in rows} == {res.spec_hash}
    assert (out / "knowledge.svg").stat().st_size > 1000 and (out / "knowledge.png").is_file()
    assert json.loads((out / "knowledge.json").read_text())["spec_hash"] == res.spec_hash
    assert (out / "report" / "figures" / "knowledge.svg").is_file()
    labels = set()
    for r in res.runs:
        with RunStore.open(Path(r.run)) as store:
            labels.add(store.manifest().label)
    assert all(res.spec_hash[:8] in label for label in labels)


def test_the_same_spec_and_seed_give_the_same_matrix_and_a_rerun_trains_nothing(small_run, tmp_path) -> None:
    res, folder = small_run
    again = run_experiment("inject", folder / "spec.yaml", out=tmp_path / "fresh", report=False)
    assert [c.model_dump() for c in again.cells] == [c.model_dump() for c in res.cells]
    checkpoints = sorted((tmp_path / "fresh" / "train").glob("*.pt"))
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    rerun = run_experiment("inject", folder / "spec.yaml", out=tmp_path / "fresh", report=False)
    # Every arm reused from its recorded spec hash: no checkpoint was written again.
    assert len(checkpoints) == 3 and [p.stat().st_mtime_ns for p in checkpoints] == stamps
    assert rerun.seconds["arms"] == again.seconds["arms"] > rerun.seconds["train"]
    assert [c.model_dump() for c in rerun.cells] == [c.model_dump() for c in res.cells]


def test_the_cli_prints_the_matrix_with_intervals(small_run, cli) -> None:
    _, folder = small_run
    # The finished folder again: nothing is retrained or rerun, the table is printed from the runs.
    code, stdout, _ = invoke(cli, "knowledge", "inject", str(folder / "spec.yaml"), "-o", str(folder / "out"),
                             "--no-html")  # fmt: skip
    assert code == 0
    assert "train und" in stdout and "target" in stdout and "locality" in stdout
    assert "train und -> gen evaluated:" in stdout and "train gen -> und evaluated:" in stdout
    assert "wrote " in stdout and "knowledge.csv" in stdout


def test_edit_runs_and_reports_efficacy_generalisation_and_locality(tmp_path) -> None:
    spec = {**SMALL, "experiment": "edit", "facts": [{"name": "zorp", "look": "blue triangle"}],
            "arms": ["gen"], "train": {"steps": 10, "per_direction": 8, "replay": 8}}  # fmt: skip
    res = run_experiment("edit", write_spec(tmp_path, spec), out=tmp_path / "out", report=False)
    assert {c.probe for c in res.cells} == {"efficacy", "generalisation", "locality"}
    efficacy = res.cell("gen", "efficacy", "und")
    assert efficacy.verdict in ("transfer", "none detected", "interference") and not efficacy.trained
    # An edit adds no token: the baseline is the shipped model itself.
    assert res.runs[0].model == f"toy:{shipped_checkpoint()}"


def test_user_training_data_is_read_and_checked(tmp_path) -> None:
    img = tmp_path / "a.png"
    Image.new("RGB", (48, 48), "white").save(img)
    good = tmp_path / "train.jsonl"
    lines = [{"direction": "und", "prompt": "where is the brosk", "image": "a.png", "answer": "top"},
             {"direction": "gen", "prompt": "draw a brosk", "target": "a.png"}]  # fmt: skip
    good.write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples = load_examples(good)
    assert [e.direction for e in examples] == ["und", "gen"] and examples[1].target is not None
    spec = KnowledgeSpec.model_validate({**SMALL, "data": {"train": "train.jsonl"}})
    batch = Sampler(spec, "both", 0, tmp_path)()
    assert sum(not e.replay for e in batch) == 16 and sum(e.replay for e in batch) == 8
    assert {e.prompt for e in batch if not e.replay} == {"where is the brosk", "draw a brosk"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"direction": "gen", "prompt": "draw", "target": "../escape.png"}) + "\n")
    with pytest.raises(GapevalError) as exc:
        load_examples(bad)
    assert exc.value.field == "target" and f"{bad}:1" in str(exc.value.file)


def test_a_user_evaluation_suite_names_its_probes_and_groups(tmp_path) -> None:
    from gapeval.experiments.knowledge import probes_of

    img = tmp_path / "a.png"
    Image.new("RGB", (48, 48), "white").save(img)
    base = {"category": "World Knowledge", "und": {"prompt": "where is the brosk", "images": ["a.png"]},
            "gen": {"prompt": "draw a brosk"}, "refs": {"text": "top"}}  # fmt: skip
    lines = [{**base, "id": "a", "probe": "target", "group": "brosk"},
             {**base, "id": "b", "probe": "locality"}, {**base, "id": "c"}]  # fmt: skip
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    probes = probes_of(load_jsonl(tmp_path), "inject")
    assert probes == {"a": ("target", "brosk"), "b": ("locality", "b"), "c": ("target", "c")}
    with pytest.raises(GapevalError) as exc:
        probes_of(load_jsonl(tmp_path), "edit")  # "target" is no probe of an edit
    assert exc.value.field == "a.probe"
