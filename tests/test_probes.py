"""The parameter-overlap probe: where the understanding and generation losses of the same facts land."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import invoke
from gapeval import api
from gapeval.experiments.knowledge_data import Sampler
from gapeval.experiments.knowledge_spec import load_spec
from gapeval.experiments.probes import linear_cka, probe_overlap, read_across, weight_changes
from gapeval.toy.train import load_checkpoint, save_checkpoint

TINY = {"steps": 2, "batch_size": 8, "d_model": 32, "n_layers": 2, "n_heads": 2, "checkpoint_every": 2,
        "chunk_items": 64, "warmup": 1}  # fmt: skip


def _facts(n: int = 8) -> tuple[list, list, list[str]]:
    spec, file = load_spec(None, "inject")
    sampler = Sampler(spec, "both", 0, file.parent)
    return sampler.knowledge("und", n), sampler.knowledge("gen", n), [f.name for f in spec.facts]


def test_identical_losses_overlap_completely() -> None:
    und, _, words = _facts()
    res = probe_overlap("toy", und, und, words=words, topk=0.01)
    assert res.overall.cosine == pytest.approx(1.0) and res.overall.overlap == 1.0
    reached = [g for g in res.groups if g.cosine is not None]
    assert reached and all(g.cosine == pytest.approx(1.0) for g in reached)
    assert all(g.overlap in (None, 1.0) for g in res.groups)


@pytest.fixture(scope="module")
def towers(tmp_path_factory: pytest.TempPathFactory):
    return api.train_toy(tmp_path_factory.mktemp("towers"), eval_items=0, arch="towers", **TINY)


def test_towers_share_nothing_outside_the_embeddings(towers) -> None:
    und, gen, words = _facts()
    res = probe_overlap(f"toy:{towers}", und, gen, words=words, topk=0.05)
    sides = {g.group: g.side for g in res.groups}
    assert {"tok", "pos"} <= {g for g, s in sides.items() if s == "shared"}
    for g in res.groups:
        if g.side in ("und", "gen"):
            # one direction never reaches the other tower: no cosine, and nothing of the top in common
            assert g.cosine is None and g.overlap in (None, 0.0), g
    assert next(g for g in res.groups if g.group == "tok").overlap > 0
    assert sum(g.und_share for g in res.groups if g.side == "gen") == 0
    assert sum(g.gen_share for g in res.groups if g.side == "und") == 0


def test_weight_change_says_where_an_arm_wrote(towers, tmp_path) -> None:
    model, vocab, tok, meta = load_checkpoint(towers)
    save_checkpoint(tmp_path / "baseline.pt", model, vocab, tok, meta)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if model.side_of(name) == "gen":
                p.mul_(1.5)
    save_checkpoint(tmp_path / "gen-s0.pt", model, vocab, tok, meta)
    changes = weight_changes(tmp_path)
    assert changes.arms == ["gen-s0"]
    moved = {g.group: g.change["gen-s0"] for g in changes.groups}
    sides = {g.group: g.side for g in changes.groups}
    # fp16 checkpoints: a 1.5x weight moves by about 0.5 of its norm; the other tower and the embeddings not
    assert all(abs(v - 0.5) < 0.01 for g, v in moved.items() if sides[g] == "gen")
    assert all(v == 0.0 for g, v in moved.items() if sides[g] != "gen")


def test_the_probe_command_from_an_empty_folder(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke(cli, "probe", "overlap", "--examples", "4")
    assert code == 0, err
    assert "Where the two directions' gradients land: toy" in out and "blocks.3.mlp" in out
    assert list(tmp_path.iterdir()) == []  # a probe writes nothing
    for bad, field in ((["--topk", "0"], "--topk"), (["--examples", "0"], "--examples"),
                       (["--arms", "nowhere"], "--arms"), (["toy:missing.pt"], "model")):  # fmt: skip
        code, _, err = invoke(cli, "probe", "overlap", *bad)
        assert code == 2 and field in err and len(err.strip().splitlines()) == 1, err


def test_the_probe_reads_janus_through_the_lora_runners_losses(tmp_path) -> None:
    pytest.importorskip("transformers")
    from gapeval.testing.tiny_models import tiny_janus

    base = tiny_janus(tmp_path / "janus", trained_heads=True)
    res = api.probe_overlap(f"janus:{base}", examples=2, topk=5.0).overlap
    layers = [g for g in res.groups if g.group.startswith("model.language_model.layers.")]
    assert layers and res.overall.cosine is not None
    # the generation head is read by generation only; the vision tower by understanding only
    head = [g for g in res.groups if "generation_head" in g.group]
    assert head and all(g.cosine is None and g.und_share == 0 for g in head)


def test_the_representation_probe_reads_a_shared_code_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(0)
    k, n, d = 8, 400, 24
    means, labels = rng.normal(0, 1, (k, d)), np.arange(n) % k
    und = means[labels] + 0.3 * rng.normal(0, 1, (n, d))
    shared = means[labels] + 0.3 * rng.normal(0, 1, (n, d))  # the same code on the other path
    disjoint = rng.normal(0, 1, (k, d))[labels] + 0.3 * rng.normal(0, 1, (n, d))  # a code of its own
    (same,) = read_across(und[None], shared[None], labels, k)
    (apart,) = read_across(und[None], disjoint[None], labels, k)
    assert same.transfer > 0.95 and same.within > 0.95 and same.cka > 0.8
    assert apart.within > 0.95 and apart.within_gen > 0.95  # both paths hold the entity...
    assert apart.transfer_low <= 1 / k <= apart.transfer_high  # ...but not the same way: chance across
    shuffled = rng.permutation(labels)
    (blind,) = read_across(und[None], shared[None], shuffled, k)
    assert (
        blind.within_low <= 1 / k <= blind.within_high and blind.transfer_low <= 1 / k <= blind.transfer_high
    )
    rotation, _ = np.linalg.qr(rng.normal(0, 1, (d, d)))
    assert linear_cka(und, und @ rotation) == pytest.approx(1.0)


def test_the_representation_probe_from_an_empty_folder(cli, tmp_path, monkeypatch, towers) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke(cli, "probe", "representations", "--per-entity", "4")
    assert code == 0, err
    assert "Is an entity held the same way on both paths? toy" in out and list(tmp_path.iterdir()) == []
    res = api.probe_representations(f"toy:{towers}", per_entity=3)
    assert len(res.layers) == 2 + 2 and res.chance == pytest.approx(1 / len(res.entities))
    # at the entity's own token, layer 0 is the shared embedding plus a position constant on each path:
    # once centred, the two paths' states are the same (CKA 1)
    at_name = api.probe_representations(f"toy:{towers}", per_entity=3, at="entity")
    assert at_name.at == "entity" and at_name.layers[0].cka == pytest.approx(1.0)
    assert res.layers[0].cka == 0.0  # at the last token, layer 0 is one constant state per path
    for bad, field in ((["--per-entity", "1"], "--per-entity"), ([f"janus:{tmp_path}"], "model"),
                       (["--at", "middle"], "--at")):  # fmt: skip
        code, _, err = invoke(cli, "probe", "representations", *bad)
        assert code == 2 and field in err and len(err.strip().splitlines()) == 1, err
