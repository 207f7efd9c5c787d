"""Architecture variants of the built-in model: shared, mixture of transformers (mot), two towers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import invoke
from gapeval import api
from gapeval.toy.data import collate, sample_specs, sequences
from gapeval.toy.model import ModelConfig, UnifiedTransformer, generation_rows, generation_side
from gapeval.toy.tokenizer import ImageTokenizer
from gapeval.toy.train import load_checkpoint
from gapeval.toy.vocab import Vocab, world_words

TINY = {"steps": 3, "batch_size": 8, "d_model": 32, "n_layers": 2, "n_heads": 2, "checkpoint_every": 3,
        "chunk_items": 64, "warmup": 1}  # fmt: skip


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, int]:
    """Understanding, generation and edit sequences of the world, and the vocabulary size."""
    tok = ImageTokenizer.fit(seed=0)
    vocab = Vocab(world_words(), tok.size)
    rng = np.random.default_rng(0)
    seqs = sequences(sample_specs(rng, 48), vocab, tok, rng)
    ids = collate(seqs).ids
    gen = generation_rows(ids)
    assert gen.any() and (~gen).any()
    return ids, gen, vocab.size


def _cfg(vocab_size: int, arch: str, layers: int = 1) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=layers, n_heads=2, arch=arch)


def _perturbed(model: UnifiedTransformer, side: str) -> UnifiedTransformer:
    """A copy whose parameters serving ``side`` are moved (the others bit-identical)."""
    other = UnifiedTransformer(model.cfg)
    other.load_state_dict(model.state_dict())
    moved = 0
    with torch.no_grad():
        for name, p in other.named_parameters():
            if other.side_of(name) == side:
                p.add_(torch.randn_like(p) * 0.5)
                moved += 1
    assert moved
    return other


@pytest.mark.parametrize("arch", ["mot", "towers"])
def test_the_variants_really_route(arch: str, batch) -> None:
    ids, gen_rows, vocab_size = batch
    torch.manual_seed(0)
    model = UnifiedTransformer(
        ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, arch=arch)
    )
    base = model(ids).detach()
    side = generation_side(ids)
    # moving the generation side leaves every understanding request's logits exactly as they were, and
    # (causal attention) every position of a generation request before its output image
    moved = _perturbed(model, "gen")(ids).detach()
    assert torch.equal(moved[~gen_rows], base[~gen_rows])
    if arch == "mot":
        before_output = gen_rows[:, None] & ~side & (torch.cumsum(side.int(), dim=1) == 0)
        assert torch.equal(moved[before_output], base[before_output])
    assert not torch.allclose(moved[side], base[side])
    # the reverse: moving the understanding side
    moved = _perturbed(model, "und")(ids).detach()
    assert not torch.allclose(moved[~gen_rows], base[~gen_rows])
    if arch == "towers":
        assert torch.equal(moved[gen_rows], base[gen_rows])  # generation never reads the other tower
    else:
        # generation's own tokens read the prompt's understanding-side states through shared attention
        assert not torch.allclose(moved[side], base[side])
    # the embeddings (and the tied head) are shared by both
    moved = _perturbed(model, "shared")(ids).detach()
    assert not torch.allclose(moved[~gen_rows], base[~gen_rows]) and not torch.allclose(
        moved[side], base[side]
    )


def test_shared_has_no_side_of_its_own(batch) -> None:
    _, _, vocab_size = batch
    model = UnifiedTransformer(_cfg(vocab_size, "shared"))
    assert {model.side_of(n) for n, _ in model.named_parameters()} == {"shared"}
    mot = UnifiedTransformer(
        ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=1, n_heads=2, arch="mot")
    )
    sides = {n: mot.side_of(n) for n, _ in mot.named_parameters()}
    assert sides["blocks.0.gen.qkv.weight"] == "gen" and sides["blocks.0.und.mlp.0.weight"] == "und"
    assert sides["tok.weight"] == sides["ln.weight"] == "shared"


@pytest.mark.parametrize("arch", ["shared", "mot", "towers"])
def test_each_variant_trains_and_runs_as_an_ordinary_model(arch: str, tmp_path) -> None:
    final = api.train_toy(tmp_path / arch, eval_items=0, arch=arch, **TINY)
    model, _, _, meta = load_checkpoint(final)
    assert model.cfg.arch == arch and meta["train"]["arch"] == arch
    res = api.run("shapes-v1-mini", f"toy:{final}", out=tmp_path / f"run-{arch}", samples_gen=1)
    assert res.stats.failed == 0 and res.stats.done == 192


def test_a_bad_architecture_is_one_line(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke(cli, "toy", "train", "--arch", "moe", "--steps", "1")
    assert code == 2 and "--arch" in err and "moe" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "toy-train").exists()
