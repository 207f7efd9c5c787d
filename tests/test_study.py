"""``gapeval study mechanisms``: train or reuse variants, measure each, one table and page."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import invoke
from gapeval.experiments.study import load_study

KNOWLEDGE = {
    "train": {"steps": 3, "per_direction": 4, "replay": 2, "warmup": 0},
    "eval": {"per_fact": 1, "locality": 2, "samples_gen": 1, "n_boot": 20},
    "arms": ["und", "gen"],
}
STUDY = {
    "name": "tiny",
    "variants": ["towers"],
    "train": {
        "steps": 4,
        "batch_size": 8,
        "d_model": 32,
        "n_layers": 1,
        "checkpoint_every": 2,
        "eval_items": 0,
    },
    "suite": "shapes-v1-mini",
    "samples_gen": 1,
    "inject": "inject.yaml",
    "edit": "edit.yaml",
    "per_entity": 2,
    "examples": 2,
    "n_boot": 20,
}


def write(folder: Path, study: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    new = [{"name": "brosk", "look": "red triangle"}, {"name": "quenna", "look": "green square"}]
    changed = [{"name": "zorp", "look": "blue triangle"}, {"name": "blick", "look": "purple circle"}]
    inject = {"experiment": "inject", "facts": new, **KNOWLEDGE}
    edit = {"experiment": "edit", "facts": changed, **KNOWLEDGE}
    (folder / "inject.yaml").write_text(yaml.safe_dump(inject))
    (folder / "edit.yaml").write_text(yaml.safe_dump(edit))
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    return folder / "study.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One tiny study run through the CLI from its own folder (relative paths, as a user runs it)."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("study")
    write(folder, STUDY)
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        code, stdout, stderr = invoke(runner, "study", "mechanisms", "study.yaml", "-o", "out")
    assert code == 0, stderr
    return folder, folder / "out", stdout


def test_the_study_trains_the_variant_and_measures_every_mechanism(study) -> None:
    _, out, stdout = study
    # Trained with the study's recipe into the default variants folder: a checkpoint series and its log.
    assert sorted(p.name for p in (out / "variants" / "towers").glob("*.pt")) == [
        "final.pt", "step_00002.pt", "step_00004.pt"]  # fmt: skip
    result = json.loads((out / "study.json").read_text())
    (v,) = result["variants"]
    assert v["variant"] == "towers" and v["params"] > 0 and v["train_seconds"] is not None
    # Each part is an ordinary result of its own command, where the table says.
    curve = json.loads((out / "towers" / "curve" / "curve.json").read_text())
    assert [p["step"] for p in curve["points"]] == [2, 4]
    assert v["gap"]["value"] == curve["points"][-1]["gap"] and v["lag"]["value"] == curve["lag"]["lag"]
    inject = json.loads((out / "towers" / "knowledge-inject" / "knowledge.json").read_text())
    cell = next(
        c for c in inject["cells"] if (c["arm"], c["probe"], c["direction"]) == ("und", "target", "gen")
    )
    assert v["inject_und_to_gen"] == {"value": cell["delta"], "low": cell["low"], "high": cell["high"]}
    assert inject["spec"]["model"] == "toy:out/variants/towers/final.pt"  # relative, as the user gave -o
    assert inject["spec"]["seeds"] == [0]
    reps = json.loads((out / "towers" / "representations.json").read_text())
    assert v["rep_transfer"]["value"] == max(r["transfer"] for r in reps["layers"])
    overlap = json.loads((out / "towers" / "overlap.json").read_text())
    assert v["grad_cosine"] == overlap["overall"]["cosine"]
    # One row per variant in the CSV; the terminal shows the measures as rows.
    rows = list(csv.DictReader((out / "study.csv").open()))
    assert [r["variant"] for r in rows] == ["towers"] and float(rows[0]["gap"]) == pytest.approx(
        v["gap"]["value"]
    )
    assert "inject: und -> gen" in stdout and "representation und -> gen" in stdout
    page = (out / "index.html").read_text()
    assert "Why the gap: tiny" in page and "script-src 'none'" in page
    for name in ("mechanisms-curves", "mechanisms-transfer", "mechanisms-layers"):
        assert f"figures/{name}.svg" in page and (out / "figures" / f"{name}.png").is_file()


def test_a_rerun_reuses_the_trained_variant(study, cli) -> None:
    folder, out, _ = study
    before = (out / "variants" / "towers" / "final.pt").stat().st_mtime_ns
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        code, _, stderr = invoke(cli, "study", "mechanisms", "study.yaml", "-o", "out")
    assert code == 0 and "towers: reusing" in stderr
    assert (out / "variants" / "towers" / "final.pt").stat().st_mtime_ns == before


def test_a_variants_folder_of_another_recipe_is_refused(study, tmp_path, cli) -> None:
    _, out, _ = study
    other = {**STUDY, "variants_dir": str(out / "variants"), "train": {**STUDY["train"], "steps": 6}}  # type: ignore[dict-item]
    path = write(tmp_path, other)
    code, stdout, stderr = invoke(cli, "study", "mechanisms", str(path), "-o", str(tmp_path / "out2"))
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "field 'variants_dir'" in stderr and "another recipe (steps: 4 != 6)" in stderr


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"variants": ["shared", "pipes"]}, "variants.1", "'shared', 'mot' or 'towers'"),
        ({"train": {"steps": 4, "checkpoint_every": 4}}, "train", "at least two checkpoints"),
        ({"inject": "missing.yaml"}, None, "missing.yaml"),
        ({"suite": "no-such-suite"}, None, "no-such-suite"),
    ],
)
def test_a_bad_study_spec_is_one_line_and_writes_nothing(tmp_path, cli, change, field, message) -> None:
    path = write(tmp_path, {**STUDY, **change})
    code, stdout, stderr = invoke(cli, "study", "mechanisms", str(path), "-o", str(tmp_path / "out"))
    assert code == 2 and stdout == "" and stderr.count("\n") == 1 and message in stderr
    assert field is None or f"field '{field}'" in stderr
    assert not (tmp_path / "out").exists()


def test_the_builtin_study_is_the_shipped_recipe_on_all_three_variants() -> None:
    from gapeval.toy.train import TrainConfig

    spec, _ = load_study(None)
    shipped = TrainConfig()
    assert spec.variants == ["shared", "mot", "towers"]
    keys = ("steps", "batch_size", "d_model", "n_layers", "seed", "checkpoint_every")
    assert {k: getattr(spec.train, k) for k in keys} == {k: getattr(shipped, k) for k in keys}
