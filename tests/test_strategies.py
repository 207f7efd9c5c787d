"""Fine-tuning strategies of knowledge experiments: full, LoRA, frozen modules, gradual unfreezing, align."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import invoke
from gapeval.errors import GapevalError
from gapeval.experiments.knowledge import run_experiment
from gapeval.experiments.strategies import ToyStrategy, info_nce, unfreezing_stages
from gapeval.toy.model import ModelConfig, UnifiedTransformer, grow_vocabulary
from gapeval.toy.tokenizer import ImageTokenizer
from gapeval.toy.train import load_checkpoint, save_checkpoint
from gapeval.toy.vocab import Vocab, world_words

FACTS = [{"name": "brosk", "look": "red triangle"}, {"name": "quenna", "look": "green square"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny checkpoints of each architecture (two layers, width 32)."""
    folder = tmp_path_factory.mktemp("tiny")
    tok = ImageTokenizer.fit(seed=0)
    vocab = Vocab(world_words(), tok.size)
    out = {}
    for arch in ("shared", "mot", "towers"):
        torch.manual_seed(0)
        model = UnifiedTransformer(ModelConfig(vocab_size=vocab.size, d_model=32, n_layers=2, n_heads=2,
                                               arch=arch))  # fmt: skip
        out[arch] = folder / f"{arch}.pt"
        save_checkpoint(out[arch], model, vocab, tok, {"step": 0})
    return out


def spec(model: Path, strategy: dict[str, object], **train: object) -> dict[str, object]:
    return {
        "experiment": "inject",
        "name": "strategy",
        "model": f"toy:{model}",
        "facts": FACTS,
        "arms": ["und"],
        "seeds": [0],
        "train": {"steps": 4, "per_direction": 4, "replay": 2, "warmup": 0, "lr": 0.01, **train},
        "strategy": strategy,
        "eval": {"per_fact": 1, "locality": 2, "samples_gen": 1, "n_boot": 20},
    }


def experiment(folder: Path, content: dict[str, object]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(content))
    return path, folder / "out"


def states(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Vocab]:
    """The baseline's and the trained und arm's weights, and the grown vocabulary."""
    base, vocab, _, _ = load_checkpoint(out / "train" / "baseline.pt")
    arm, _, _, _ = load_checkpoint(out / "train" / "und-s0.pt")
    return dict(base.state_dict()), dict(arm.state_dict()), vocab


@pytest.mark.parametrize(
    "strategy",
    [
        {"kind": "full"},
        {"kind": "lora"},
        {"kind": "frozen", "freeze": ["gen-side"]},
        {"kind": "gradual", "unfreeze_every": 2},
        {"align": 0.5, "align_at": "entity", "align_layer": 2},
    ],
)
def test_each_strategy_runs_end_to_end_and_names_itself(tiny, tmp_path, strategy) -> None:
    path, out = experiment(tmp_path, spec(tiny["mot"], strategy))
    res = run_experiment("inject", path, out=out, report=False)
    trained = res.runs[1]
    label = trained.train["strategy"]
    assert label == {
        "full": "full",
        "lora": "lora",
        "frozen": "frozen gen-side",
        "gradual": "gradual /2",
    }.get(str(strategy.get("kind")), "full +align 0.5")
    assert res.spec["strategy"]["kind"] == strategy.get("kind", "full")
    assert label in res.table().title
    manifest = json.loads((Path(trained.run) / "manifest.json").read_text())
    assert f"({label})" in manifest["label"] and res.spec_hash[:8] in manifest["label"]
    # Every step of the arm trained (the loss log has a first and a last tenth per group).
    assert trained.train["steps"] == 4 and set(trained.train["loss"]) >= {"und", "replay"}
    if strategy.get("align"):
        assert "align" in trained.train["loss"]


def test_the_strategy_is_part_of_the_hash(tiny, tmp_path) -> None:
    from gapeval.experiments.knowledge import load_spec

    full, _ = experiment(tmp_path / "a", spec(tiny["shared"], {"kind": "full"}))
    frozen, _ = experiment(tmp_path / "b", spec(tiny["shared"], {"kind": "frozen", "freeze": ["blocks.0"]}))
    default, _ = experiment(
        tmp_path / "c", {k: v for k, v in spec(tiny["shared"], {}).items() if k != "strategy"}
    )
    digests = [load_spec(p, "inject")[0].digest() for p in (full, frozen, default)]
    # An unset strategy is the model's default (full here), written into the normalised spec.
    assert digests[0] != digests[1] and digests[0] == digests[2]


@pytest.mark.parametrize("arch", ["mot", "towers"])
def test_freezing_the_generation_side_leaves_those_weights_bit_identical(tiny, tmp_path, arch) -> None:
    path, out = experiment(tmp_path, spec(tiny[arch], {"kind": "frozen", "freeze": ["gen-side"]}))
    run_experiment("inject", path, out=out, report=False)
    base, arm, _ = states(out)
    model = UnifiedTransformer(load_checkpoint(out / "train" / "und-s0.pt")[0].cfg)
    sides = {k: model.side_of(k) for k in base}
    gen = [k for k, s in sides.items() if s == "gen"]
    assert gen and all(torch.equal(base[k], arm[k]) for k in gen)
    # The rest trained: every understanding-side weight matrix moved, and so did the shared embeddings.
    und = [k for k, s in sides.items() if s == "und" and k.endswith("qkv.weight")]
    assert und and not any(torch.equal(base[k], arm[k]) for k in und)
    assert not torch.equal(base["tok.weight"], arm["tok.weight"])


def test_lora_merges_into_the_linear_layers_and_trains_only_the_new_names_rows(tiny, tmp_path) -> None:
    path, out = experiment(tmp_path, spec(tiny["shared"], {"kind": "lora"}, lora_rank=2))
    res = run_experiment("inject", path, out=out, report=False)
    base, arm, vocab = states(out)
    assert set(arm) == set(base)  # an ordinary checkpoint: no LoRA factors left in it
    linear = [k for k in base if k.endswith(("qkv.weight", "proj.weight", "mlp.0.weight", "mlp.2.weight"))]
    assert linear and not any(torch.equal(base[k], arm[k]) for k in linear)
    untouched = [k for k in base if "ln" in k or k == "pos.weight" or k.endswith("bias")]
    assert untouched and all(torch.equal(base[k], arm[k]) for k in untouched)
    new = [vocab.encode_text(f["name"])[0] for f in FACTS]
    old = [i for i in range(vocab.size) if i not in new]
    assert torch.equal(base["tok.weight"][old], arm["tok.weight"][old])
    assert not torch.equal(base["tok.weight"][new], arm["tok.weight"][new])
    # rank 2 on 4 linear layers of 2 blocks (A: r x in, B: out x r), plus the two new rows.
    d = 32
    per_block = 2 * (d + 3 * d) + 2 * (d + d) + 2 * (d + 4 * d) + 2 * (4 * d + d)
    assert res.runs[1].train["trainable_params"] == 2 * per_block + 2 * d


def test_gradual_unfreezing_opens_the_output_side_first_and_the_embeddings_last(tiny, tmp_path) -> None:
    model = load_checkpoint(tiny["towers"])[0]
    stages = unfreezing_stages(model)
    assert [len(s) > 0 for s in stages] == [True, True, True] and stages[-1] == ["tok.weight", "pos.weight"]
    assert {"ln.weight", "gen_ln.weight", "blocks.1.qkv.weight", "gen_blocks.1.qkv.weight"} <= set(stages[0])
    assert all(n.startswith(("blocks.0.", "gen_blocks.0.")) for n in stages[1])
    # Two steps per stage, four steps: the top and block 0 train, the embeddings never open.
    path, out = experiment(tmp_path, spec(tiny["shared"], {"kind": "gradual", "unfreeze_every": 2}))
    run_experiment("inject", path, out=out, report=False)
    base, arm, _ = states(out)
    assert torch.equal(base["pos.weight"], arm["pos.weight"]) and torch.equal(
        base["tok.weight"], arm["tok.weight"]
    )
    assert not torch.equal(base["blocks.0.qkv.weight"], arm["blocks.0.qkv.weight"])
    assert not torch.equal(base["blocks.1.qkv.weight"], arm["blocks.1.qkv.weight"])


def test_info_nce_is_low_for_matched_pairs_and_high_for_swapped_ones() -> None:
    eye = torch.eye(4) * 3
    assert float(info_nce(eye, eye, 0.1)) < 1e-3
    assert float(info_nce(eye, eye[[1, 0, 3, 2]], 0.1)) > 9.0
    one = torch.tensor([[1.0, 0.0]])
    assert float(info_nce(one, one, 0.1)) == pytest.approx(0.0) and float(info_nce(one, -one, 0.1)) == 2.0


def test_the_alignment_term_pulls_the_two_paths_of_each_fact_together(tiny) -> None:
    from gapeval.experiments.knowledge_spec import Strategy

    model, vocab, tok, _ = load_checkpoint(tiny["towers"])
    names = ["brosk", "quenna", "drup", "frell"]
    vocab = grow_vocabulary(model, vocab, names)
    looks = {n: (("red", "green", "blue", "purple")[i], "square") for i, n in enumerate(names)}
    strategy = Strategy(align=1.0, align_at="entity")
    plan = ToyStrategy(strategy, model, vocab, tok, looks, steps=60, lora_rank=2,
                       lora_alpha=4, seed=0)  # fmt: skip
    opt = plan.optimizer(3e-3, 0.0)
    losses = []
    for _ in range(60):
        term = plan.extra_loss()
        assert term is not None
        opt.zero_grad()
        term.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(term.detach()))
    # ln 4 is the loss of states that say nothing about which fact they are.
    assert losses[0] > 1.0 and sum(losses[-5:]) / 5 < 0.1


@pytest.mark.parametrize(
    ("strategy", "field", "message"),
    [
        ({"kind": "frozen", "freeze": ["blocks.9"]}, "strategy.freeze", "no module 'blocks.9'"),
        (
            {"kind": "frozen", "freeze": ["gen-side"]},
            "strategy.freeze",
            "shared architecture has no gen-side",
        ),
        (
            {"kind": "frozen", "freeze": ["blocks", "tok", "pos", "ln"]},
            "strategy.freeze",
            "nothing would train",
        ),
        ({"align": 1.0, "align_layer": 7}, "strategy.align_layer", "layer states 0..3"),
        ({"kind": "lora", "freeze": ["tok"]}, "strategy", "freeze goes with kind frozen"),
        ({"align_at": "entity"}, "strategy", "go with align > 0"),
        ({"kind": "sideways"}, "strategy.kind", "'full', 'lora', 'frozen' or 'gradual'"),
    ],
)
def test_a_bad_strategy_is_one_line_naming_the_file_and_field_and_writes_nothing(
    tiny, tmp_path, cli, strategy, field, message
) -> None:
    path, out = experiment(tmp_path, spec(tiny["shared"], strategy))
    code, stdout, stderr = invoke(cli, "knowledge", "inject", str(path), "-o", str(out))
    assert code == 2 and stdout == ""
    assert (
        stderr.count("\n") == 1 and str(path) in stderr and f"field '{field}'" in stderr and message in stderr
    )
    assert not out.exists()
    with pytest.raises(GapevalError):
        run_experiment("inject", path, out=out, report=False)


def test_janus_trains_lora_only(tmp_path) -> None:
    content = {**spec(Path("x"), {"kind": "full"}), "model": "janus:some/model"}
    path, out = experiment(tmp_path, content)
    with pytest.raises(GapevalError) as exc:
        run_experiment("inject", path, out=out, report=False)
    assert exc.value.field == "strategy" and "LoRA only" in exc.value.message and not out.exists()
