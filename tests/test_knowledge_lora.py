"""The LoRA path of the knowledge experiments on a tiny in-process Janus (CPU, no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.experiments.knowledge import run_experiment
from gapeval.models.hf import merge_adapter
from gapeval.store import RunStore
from gapeval.testing.tiny_models import tiny_janus

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("lora")
    base = tiny_janus(folder / "janus", trained_heads=True)
    spec = {
        "experiment": "inject",
        "name": "tiny-janus",
        "model": f"janus:{base}",
        "model_options": {"batch_size": "4", "max_new_tokens": "4"},
        "facts": [{"name": "brosk", "look": "red triangle"}],
        "arms": ["und", "gen"],
        "train": {"steps": 10, "per_direction": 4, "replay": 0, "lr": 0.01, "warmup": 0, "lora_rank": 4},
        "eval": {"per_fact": 2, "locality": 2, "samples_gen": 1, "n_boot": 50},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return run_experiment("inject", path, out=folder / "out", report=False), base, folder


def test_lora_lowers_the_trained_directions_loss(lora_run) -> None:
    res, _, _ = lora_run
    for r in res.runs[1:]:
        start, end = r.train["loss"][r.arm]
        assert end < start, f"{r.arm} loss did not go down: {start} -> {end}"
        assert set(r.train["loss"]) == {r.arm}  # only the trained direction was trained
        assert r.train["trainable_params"] > 0


def test_the_adapter_is_saved_and_reloads_onto_a_fresh_base(lora_run) -> None:
    _, base, folder = lora_run
    from transformers import JanusForConditionalGeneration

    adapter = folder / "out" / "train" / "gen-s0"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    plain = JanusForConditionalGeneration.from_pretrained(base)
    merged = merge_adapter(JanusForConditionalGeneration.from_pretrained(base), str(adapter))
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    before, after = dict(plain.named_parameters())[name], dict(merged.named_parameters())[name]
    assert not torch.equal(before, after)  # the adapter changed the attention projections
    vision = "model.vision_model.encoder.layers.0.self_attn.q_proj.weight"
    assert torch.equal(dict(plain.named_parameters())[vision], dict(merged.named_parameters())[vision])
    with pytest.raises(GapevalError, match=r"adapter_config\.json"):
        merge_adapter(plain, str(folder))


def test_each_evaluation_is_an_ordinary_run_that_records_its_adapter(lora_run) -> None:
    res, _, _ = lora_run
    assert [r.arm for r in res.runs] == ["baseline", "und", "gen"]
    for r in res.runs:
        with RunStore.open(Path(r.run)) as store:
            manifest = store.manifest()
            assert store.outputs() and manifest.finished_at is not None
        identity = manifest.spec.model_identity
        assert ("peft_adapter" in identity) is (r.arm != "baseline")
    scored = api.score([r.run for r in res.runs], fragility_n=0, n_boot=0)
    assert [s.overall.n_items for s in scored.runs] == [4, 4, 4]
    assert {c.probe for c in res.cells} == {"target", "locality"}


def test_only_janus_and_vlm_take_an_adapter(tmp_path) -> None:
    from gapeval.models.emu3 import Emu3Settings
    from gapeval.models.hf import HFSettings, settings_from

    assert settings_from(HFSettings, "ckpt", {"adapter": str(tmp_path)}, "vlm").adapter == str(tmp_path)
    with pytest.raises(GapevalError, match="takes no peft adapter") as exc:
        settings_from(Emu3Settings, "chat,gen", {"adapter": str(tmp_path)}, "emu3")
    assert exc.value.field == "adapter"
