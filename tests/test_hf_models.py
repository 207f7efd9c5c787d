"""Real model classes (Janus, LLaVA, Qwen-Image, Qwen-Image-Edit), tiny and random, through ``gapeval run``.

Every checkpoint is built in-process from a small config and saved like a hub checkpoint; nothing is
downloaded (HF_HUB_OFFLINE=1). The adapters load them with the same ``from_pretrained`` calls, processors,
chat templates and pipelines a full-size model goes through.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from tests.conftest import invoke

from gapeval.items import Direction
from gapeval.models.base import GenerateRequest, ModelContext, UnderstandRequest, load_model
from gapeval.records import OutputStatus
from gapeval.store import RunStore
from gapeval.suites import load_suite
from gapeval.testing import tiny_models

pytestmark = pytest.mark.slow

DIFFUSION_OPTS = ["steps=2", "height=64", "width=64", "max_sequence_length=64"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {kind: build(root / kind) for kind, build in tiny_models.BUILDERS.items()}


def statuses(run: Path) -> dict[tuple[str, str], int]:
    """(direction, status) -> count; edits are counted as direction ``edit``."""
    suite = load_suite("shapes-v1-mini")
    edits = {i.id for i in suite.items if i.gen.input_image}
    with RunStore.open(run) as store:
        outs = store.outputs()
    return dict(
        collections.Counter(
            (
                "edit" if o.direction is Direction.GEN and o.item_id in edits else str(o.direction),
                str(o.status),
            )
            for o in outs
        )
    )


def run_mini(cli, out: Path, model: str, *flags: str) -> None:
    code, stdout, stderr = invoke(
        cli, "run", "shapes-v1-mini", "-m", model, "-o", str(out), "--fragility", "0", *flags
    )
    assert code == 0, stdout + stderr


# shapes-v1-mini: 96 items, 44 of them edits; 1 answer and 2 images per item by default.
N_ITEMS, N_EDITS = 96, 44


def test_janus_runs_the_mini_suite_and_reports_edits_as_unsupported(cli, tiny, tmp_path) -> None:
    out = tmp_path / "janus"
    run_mini(cli, out, f"janus:{tiny['janus']}", "--model-opt", "batch_size=16")
    assert statuses(out) == {
        ("und", "done"): N_ITEMS,
        ("gen", "done"): 2 * (N_ITEMS - N_EDITS),
        ("edit", "unsupported"): 2 * N_EDITS,
    }
    with RunStore.open(out) as store:
        manifest = store.manifest()
        judged = store.verdicts()
        drawn = [o for o in store.outputs(OutputStatus.DONE) if o.image_sha]
        image = store.image_path(drawn[0].image_sha or "")
    desc = manifest.model_description
    assert (desc["family"], desc["seed_scope"], desc["guidance_scale"]) == ("janus", "request", 5.0)
    assert desc["parameters"] > 0 and desc["image_tokens"] == 16
    assert manifest.spec.model_identity["files"] > 0  # the checkpoint folder's digest, told before loading
    assert len(judged) == N_ITEMS + 2 * (N_ITEMS - N_EDITS)  # the scene judge decided every output
    with Image.open(image) as img:
        assert img.mode == "RGB" and img.size == (32, 32)


def test_emu3_answers_with_chat_and_draws_with_gen(cli, tiny, tmp_path) -> None:
    out = tmp_path / "emu3"
    run_mini(cli, out, f"emu3:{tiny['emu3']},{tiny['emu3']}", "--model-opt", "image_area=1024")
    assert statuses(out) == {
        ("und", "done"): N_ITEMS,
        ("gen", "done"): 2 * (N_ITEMS - N_EDITS),
        ("edit", "unsupported"): 2 * N_EDITS,
    }
    with RunStore.open(out) as store:
        desc = store.manifest().model_description
        drawn = [o for o in store.outputs(OutputStatus.DONE) if o.image_sha]
        image = store.image_path(drawn[0].image_sha or "")
    assert set(desc["parameters"]) == {"chat", "gen"} and desc["image_area"] == 1024
    with Image.open(image) as img:  # 4x4 visual tokens, decoded channels-first, stored as RGB
        assert img.mode == "RGB" and img.size == (32, 32)


@pytest.mark.parametrize("family", ["janus", "emu3"])
def test_an_image_depends_on_its_seed_not_on_its_batch(tiny, family) -> None:
    spec = f"janus:{tiny['janus']}" if family == "janus" else f"emu3:{tiny['emu3']}"
    model = load_model(spec, suite=ModelContext(), options={"image_area": "1024"} if family == "emu3" else {})
    ask = GenerateRequest(item_id="a", prompt="three red circles in a row", seed=7)
    others = [
        GenerateRequest(item_id=f"o{i}", prompt="a much longer prompt " * (i + 1), seed=i) for i in range(3)
    ]
    alone = np.asarray(model.generate([ask])[0].image)
    in_batch = np.asarray(model.generate([others[0], ask, *others[1:]])[1].image)
    again = np.asarray(model.generate([ask])[0].image)
    other_seed = np.asarray(model.generate([ask.model_copy(update={"seed": 8})])[0].image)
    assert np.array_equal(alone, in_batch)
    assert np.array_equal(alone, again)
    assert not np.array_equal(alone, other_seed)


def test_janus_answers_questions_with_several_images_alike_alone_and_batched(tiny, tmp_path) -> None:
    for colour in ("red", "blue"):
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"{colour}.png")
    two = (str(tmp_path / "red.png"), str(tmp_path / "blue.png"))
    asks = [
        UnderstandRequest(item_id="two", prompt="which is red, the first or the second?", images=two),
        UnderstandRequest(item_id="one", prompt="what colour?", images=two[:1]),
        UnderstandRequest(item_id="none", prompt="what is a circle?"),
    ]
    model = load_model(f"janus:{tiny['janus']}", suite=ModelContext(), options={"max_new_tokens": "8"})
    batched = [o.text for o in model.understand(asks)]
    assert batched == [model.understand([a])[0].text for a in asks]
    assert all(isinstance(t, str) for t in batched)


def test_sampled_answers_follow_their_seed_alone(tiny, tmp_path) -> None:
    Image.new("RGB", (40, 30), "red").save(tmp_path / "r.png")
    model = load_model(f"vlm:{tiny['vlm']}", suite=ModelContext(), options={"temperature": "1.5"})
    ask = UnderstandRequest(item_id="a", prompt="what colour?", images=(str(tmp_path / "r.png"),), seed=3)
    other = UnderstandRequest(item_id="b", prompt="and two images?", images=(str(tmp_path / "r.png"),) * 2)
    first = model.understand([ask])[0].text
    assert model.understand([other, ask])[1].text == first
    texts = {model.understand([ask.model_copy(update={"seed": s})])[0].text for s in range(4)}
    assert len(texts) > 1  # sampling is on: other seeds give other answers


def test_pair_of_a_vlm_and_a_text_to_image_pipeline_is_the_non_unified_baseline(cli, tiny, tmp_path) -> None:
    out = tmp_path / "pair"
    spec = f"pair:vlm:{tiny['vlm']}+diffusers:{tiny['qwen-image']}"
    opts = [x for o in DIFFUSION_OPTS for x in ("--model-opt", f"gen.{o}")]
    run_mini(cli, out, spec, *opts, "--samples-gen", "1")
    assert statuses(out) == {
        ("und", "done"): N_ITEMS,
        ("gen", "done"): N_ITEMS - N_EDITS,
        ("edit", "unsupported"): N_EDITS,  # QwenImagePipeline takes no input image
    }
    with RunStore.open(out) as store:
        desc = store.manifest().model_description
        identity = store.manifest().spec.model_identity
    assert (desc["und"]["class"], desc["gen"]["pipeline"]) == (
        "LlavaForConditionalGeneration",
        "QwenImagePipeline",
    )
    assert identity["und"]["adapter"] == "gapeval.models.vlm:VLMModel"
    assert identity["gen"]["adapter"] == "gapeval.models.diffusion:DiffusersModel"


def test_an_edit_pipeline_edits_and_leaves_text_to_image_unsupported(cli, tiny, tmp_path) -> None:
    out = tmp_path / "edit"
    spec = f"py:gapeval.testing.tiny_models:TinyQwenEdit:{tiny['qwen-image-edit']}"
    opts = [x for o in DIFFUSION_OPTS for x in ("--model-opt", o)]
    run_mini(cli, out, spec, *opts, "--samples-gen", "1")
    assert statuses(out) == {
        ("und", "unsupported"): N_ITEMS,
        ("gen", "unsupported"): N_ITEMS - N_EDITS,
        ("edit", "done"): N_EDITS,
    }


def test_diffusers_images_depend_on_their_seed_not_on_their_batch(tiny, tmp_path) -> None:
    Image.new("RGB", (48, 48), "red").save(tmp_path / "r.png")
    Image.new("RGB", (40, 56), "blue").save(tmp_path / "b.png")
    opts = dict(o.split("=") for o in DIFFUSION_OPTS)
    t2i = load_model(f"diffusers:{tiny['qwen-image']}", suite=ModelContext(), options=opts)
    ask = GenerateRequest(item_id="a", prompt="a red circle", seed=11)
    others = [GenerateRequest(item_id=f"o{i}", prompt="blue squares " * (i + 1), seed=i) for i in range(2)]
    alone = np.asarray(t2i.generate([ask])[0].image, dtype=int)
    batched = t2i.generate([others[0], ask, others[1]])
    # Equal up to the last bit of batched float kernels (one grey level at most), unlike another seed's image.
    assert np.abs(alone - np.asarray(batched[1].image, dtype=int)).max() <= 1
    assert np.abs(alone - np.asarray(batched[0].image, dtype=int)).max() > 8

    edit = tiny_models.TinyQwenEdit.from_spec(str(tiny["qwen-image-edit"]), opts, ModelContext())
    req = GenerateRequest(item_id="e", prompt="make it blue", input_image=str(tmp_path / "r.png"), seed=5)
    mates = [
        req.model_copy(update={"item_id": "m", "seed": 6}),
        req.model_copy(update={"input_image": str(tmp_path / "b.png")}),
    ]
    solo = np.asarray(edit.generate([req])[0].image, dtype=int)
    batched = edit.generate([mates[0], req, mates[1]])
    assert np.abs(solo - np.asarray(batched[1].image, dtype=int)).max() <= 1
    assert np.abs(solo - np.asarray(batched[0].image, dtype=int)).max() > 8
