"""The built-in unified model: protocol, seeds, training, and the demo command end to end."""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
from PIL import Image
from tests.conftest import invoke

from gapeval.judges.scene import check_answer
from gapeval.models import GenerateRequest, UnderstandRequest, UnifiedModel, load_model
from gapeval.models.toy import shipped_checkpoint
from gapeval.suites.shapes import world
from gapeval.toy.train import TrainConfig, train


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    from gapeval.suites.shapes import build

    return build("shapes-v1-mini", tmp_path_factory.mktemp("mini"))


def test_shipped_model_implements_the_protocol(mini) -> None:
    model = load_model("toy", suite=mini)
    assert isinstance(model, UnifiedModel)
    assert model.capabilities.understands and model.capabilities.generates and model.capabilities.edits
    item = next(i for i in mini.items if i.und.images)
    texts = model.understand(
        [UnderstandRequest(item_id=item.id, prompt=item.und.prompt, images=(item.und.images[0].path,))]
    )
    assert len(texts) == 1 and isinstance(texts[0].text, str) and texts[0].text
    edit = next(i for i in mini.items if i.gen.is_edit)
    reqs = [
        GenerateRequest(
            item_id=edit.id, prompt=edit.gen.prompt, input_image=edit.gen.input_image.path, seed=s
        )
        for s in (1, 2, 1)
    ]
    imgs = model.generate(reqs)
    assert all(o.image is not None and o.image.mode == "RGB" and o.image.size == (48, 48) for o in imgs)
    a, _, c = (np.asarray(o.image) for o in imgs)
    assert (a == c).all()  # same seed, same image
    # a request's image does not depend on its batch
    alone = model.generate([reqs[0]])[0].image
    assert (np.asarray(alone) == a).all()
    assert model.describe()["family"] == "toy"


def test_tiny_training_run_lowers_the_loss(tmp_path) -> None:
    losses: list[float] = []
    cfg = TrainConfig(
        steps=40,
        batch_size=32,
        d_model=48,
        n_layers=2,
        n_heads=2,
        lr=3e-3,
        warmup=5,
        checkpoint_every=20,
        chunk_items=256,
    )
    final = train(tmp_path / "t", cfg, on_step=lambda _step, loss: losses.append(loss))
    assert final.is_file() and (tmp_path / "t" / "step_00020.pt").is_file()
    log = [json.loads(x) for x in (tmp_path / "t" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0


def test_worked_answers_pass_the_suites_own_judge_and_show_their_steps() -> None:
    from gapeval.suites.shapes import tasks
    from gapeval.toy.data import sample_specs, worked_answer
    from gapeval.toy.model import answer
    from gapeval.toy.vocab import tokenize_words, world_words

    known = set(world_words())
    # Greedy decoding must have room for the whole worked answer and its end token, or the final
    # number of a long count would be cut off and judged wrong.
    cap = inspect.signature(answer).parameters["max_new"].default
    rng = np.random.default_rng(7)
    for kind in tasks.KINDS:
        for spec in sample_specs(rng, 60, "train", [kind]):
            text = worked_answer(spec)
            # The model is trained on this text, so every word must be in its vocabulary, and the
            # judge must accept it: a scratchpad that the judge read as wrong would teach wrong answers.
            assert set(tokenize_words(text)) <= known, text
            assert len(tokenize_words(text)) + 1 <= cap, text
            assert check_answer(spec.answer_type, spec.answer_value, text)[0], (spec.und_prompt, text)
            if kind == "relation":
                a, _, b = spec.key
                where_a, where_b = (world.POSITIONS[spec.und_scene.index(o)] for o in (a, b))
                assert text == f"{where_a} and {where_b} {spec.answer}"
            elif kind in ("count", "rule"):
                # Numbered matching cells, then the total: "1 top 2 center 2".
                parts = re.split(r" ?\b(\d+)\b ?", text)[1:]
                numbers, places = [int(x) for x in parts[0::2]], parts[1::2]
                n = int(spec.answer)
                assert numbers == [*range(1, n + 1), n] and places[-1] == "", text
                cells = [world.POSITIONS.index(p) for p in places[:-1]]
                assert cells == sorted(set(cells)) and all(spec.und_scene[c] for c in cells), text
                if kind == "count":
                    assert all(spec.und_scene[c] == spec.key[0] for c in cells), text
            elif kind == "pattern":
                colours, shapes, missing = spec.key
                row, col = world.row_col(missing)
                assert text == f"{colours[row]} {shapes[col]} option {spec.answer}"
            else:
                assert text == spec.answer


def test_demo_command_reduced(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    code, stdout, _ = invoke(cli, "demo", "--suite", "shapes-v1-mini", "-o", str(out), "--fragility", "0")
    assert code == 0, stdout
    assert "Overall" in stdout and f"report: {out / 'report.md'}" in stdout.replace("\n", "")
    report = (out / "report.md").read_text()
    assert "Joint outcomes" in report and "Leaderboard" in report
    data = json.loads((out / "report.json").read_text())
    overall = data["scores"]["overall"]
    assert overall["n_paired"] == 96 and overall["missing"] == 0
    # every image the model drew reads back as a scene of the world, no cell unreadable
    for path in (out / "images").rglob("*.png"):
        with Image.open(path) as img:
            assert world.read(img)[1] == (), path


def test_toy_train_command_defaults_are_the_shipped_settings() -> None:
    # `gapeval toy train` with no options must reproduce the shipped weights' recipe.
    import inspect

    from gapeval.cli.toy import toy_train_cmd

    params = inspect.signature(toy_train_cmd).parameters
    shipped = TrainConfig()
    for option, field in [
        ("steps", "steps"),
        ("batch_size", "batch_size"),
        ("d_model", "d_model"),
        ("layers", "n_layers"),
        ("seed", "seed"),
        ("checkpoint_every", "checkpoint_every"),
        ("arch", "arch"),
    ]:
        assert params[option].default == getattr(shipped, field), option


def test_the_shipped_weights_are_in_the_package() -> None:
    # Not a skip: a package without its weights cannot run the main job, and that is a failure.
    from importlib import resources

    path = shipped_checkpoint()
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert (resources.files("gapeval.toy") / "weights" / "shapes-v1.pt").is_file()
