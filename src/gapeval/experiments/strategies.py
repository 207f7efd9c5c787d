"""Fine-tuning strategies of a knowledge experiment on the built-in model (``strategy:`` in a spec).

- ``full``: every weight trains (the default);
- ``lora``: peft LoRA factors on every linear layer (attention projections and MLPs, both sides of a
  ``mot`` or ``towers`` model), plus the embedding rows of the names the experiment adds (a new name
  whose row stayed at its mean initialisation could not be told apart from the others); the factors are
  merged into the weights after training, so an arm is an ordinary checkpoint;
- ``frozen``: every weight except the named modules or presets (``und-side``, ``gen-side``,
  ``embeddings``);
- ``gradual``: gradual unfreezing (as in ULMFiT): the final norm and the last block first, one more block
  toward the input each stage, the embeddings last;
- any of them with ``align`` > 0: a contrastive term pulls the understanding-path and generation-path
  states of the same fact together (InfoNCE over the spec's facts, both ways).

A weight that does not train is left out of the optimiser, so it stays bit-identical (AdamW's decoupled
weight decay would otherwise shrink it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gapeval.errors import GapevalError
from gapeval.experiments.knowledge_spec import FREEZE_PRESETS, Strategy

if TYPE_CHECKING:
    import torch

    from gapeval.toy.model import UnifiedTransformer
    from gapeval.toy.tokenizer import ImageTokenizer
    from gapeval.toy.vocab import Vocab

#: The linear layers LoRA adapts in the built-in model (peft matches names by their last parts).
TOY_LORA_TARGETS = ["qkv", "proj", "mlp.0", "mlp.2"]


def module_names(model: UnifiedTransformer) -> list[str]:
    """Every module path a ``freeze`` list may name (each prefix of a parameter name)."""
    names: dict[str, None] = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        for k in range(1, len(parts)):
            names[".".join(parts[:k])] = None
    return list(names)


def frozen_parameters(model: UnifiedTransformer, freeze: Sequence[str]) -> set[str]:
    """The parameter names a ``freeze`` list selects.

    Raises:
        GapevalError: An unknown module, or a side preset on a model without that side (field
            ``strategy.freeze``).

    """
    params = [name for name, _ in model.named_parameters()]
    known = module_names(model)
    out: set[str] = set()
    for entry in freeze:
        if entry in ("und-side", "gen-side"):
            picked = {n for n in params if model.side_of(n) == entry[:3]}
            if not picked:
                arch = model.cfg.arch
                raise GapevalError(f"the {arch} architecture has no {entry} weights (mot and towers models "
                                   "have); name modules instead", field="strategy.freeze")  # fmt: skip
        elif entry == "embeddings":
            picked = {"tok.weight", "pos.weight"}
        elif entry in known or entry in params:
            picked = {n for n in params if n == entry or n.startswith(entry + ".")}
        else:
            tops = ", ".join(dict.fromkeys(n.split(".")[0] for n in params))
            raise GapevalError(f"no module {entry!r} in this {model.cfg.arch} model (presets: "
                               f"{', '.join(FREEZE_PRESETS)}; modules: {tops}, blocks.N...)",
                               field="strategy.freeze")  # fmt: skip
        out |= picked
    if out == set(params):
        raise GapevalError("that freezes every weight: nothing would train", field="strategy.freeze")
    return out


def unfreezing_stages(model: UnifiedTransformer) -> list[list[str]]:
    """Parameter names per stage of gradual unfreezing, from the output side to the input."""
    params = [name for name, _ in model.named_parameters()]
    n = model.cfg.n_layers

    def block(i: int) -> list[str]:
        return [p for p in params if p.startswith((f"blocks.{i}.", f"gen_blocks.{i}."))]

    top = [p for p in params if p.startswith(("ln.", "gen_ln."))] + block(n - 1)
    return [top, *(block(i) for i in range(n - 2, -1, -1)), ["tok.weight", "pos.weight"]]


def info_nce(und: torch.Tensor, gen: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of ``und`` and ``gen`` (cosine similarities / temperature).

    One pair has nothing to contrast with: then it is 1 - cosine, which still pulls the pair together.
    """
    import torch
    import torch.nn.functional as F

    u, g = F.normalize(und, dim=-1), F.normalize(gen, dim=-1)
    if len(u) == 1:
        return 1 - (u * g).sum()
    logits = u @ g.T / temperature
    target = torch.arange(len(u))
    out: torch.Tensor = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    return out


class ToyStrategy:
    """Applies a strategy to the built-in model for one arm's training.

    Args:
        strategy: The spec's strategy.
        model: The loaded baseline (trainable weights are chosen here).
        vocab: Its vocabulary.
        tok: Its image tokenizer (for the alignment term's requests).
        facts: Each fact's entity name and look (for the alignment term).
        steps: Training steps (for the unfreezing schedule).
        lora_rank, lora_alpha: LoRA settings.
        seed: The alignment term's request seed (its own stream: the training batches stay those of the
            same seed without it).

    """

    def __init__(
        self,
        strategy: Strategy,
        model: UnifiedTransformer,
        vocab: Vocab,
        tok: ImageTokenizer,
        facts: Mapping[str, Any],
        *,
        steps: int,
        lora_rank: int,
        lora_alpha: int,
        seed: int,
    ) -> None:
        self.strategy, self.model, self.vocab, self.tok = strategy, model, vocab, tok
        self.facts = dict(facts)
        self.kind = strategy.kind or "full"
        self.rng = np.random.default_rng([seed, 1])
        self.peft: Any = None
        self.rows: Any = None  # the embedding table whose added rows LoRA trains
        self.stages: list[list[str]] = []
        self.every = 0
        params = dict(model.named_parameters())
        if self.kind == "frozen":
            frozen = frozen_parameters(model, strategy.freeze)
            for name, p in params.items():
                p.requires_grad_(name not in frozen)
        elif self.kind == "gradual":
            self.stages = unfreezing_stages(model)
            self.every = strategy.unfreeze_every or math.ceil(steps / len(self.stages))
        elif self.kind == "lora":
            self._wrap_lora(lora_rank, lora_alpha)

    def _wrap_lora(self, rank: int, alpha: int) -> None:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:  # pragma: no cover - the transformers extra brings peft
            raise GapevalError("strategy lora needs peft: pip install 'gapeval[transformers]'",
                               field="strategy.kind") from None  # fmt: skip
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=TOY_LORA_TARGETS)
        # get_peft_model freezes every base weight and adapts the model in place.
        self.peft = get_peft_model(self.model, config)
        new_rows = [self.vocab.encode_text(n)[0] for n in self.facts if n in self.vocab.extra]
        lora = sum(p.numel() for p in self.peft.parameters() if p.requires_grad)
        self.n_lora = lora + len(new_rows) * self.model.cfg.d_model
        if new_rows:
            keep = self.model.tok.weight
            keep.requires_grad_(True)
            mask = keep.new_zeros(keep.shape[0], 1)
            mask[new_rows] = 1.0
            keep.register_hook(lambda grad: grad * mask)  # type: ignore[no-untyped-call]
            self.rows = keep

    def optimizer(self, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """AdamW over what may train (the rows LoRA adds train without weight decay, so the rest stay)."""
        import torch

        if self.kind == "gradual":
            # Every weight is in the optimiser; one not yet unfrozen has no gradient, so AdamW skips it.
            groups: list[dict[str, Any]] = [{"params": list(self.model.parameters())}]
        else:
            trainable = [p for p in self.model.parameters() if p.requires_grad and p is not self.rows]
            groups = [{"params": trainable}]
            if self.rows is not None:
                groups.append({"params": [self.rows], "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))

    def before_step(self, step: int) -> None:
        """Gradual unfreezing: which stages train at ``step`` (0-based)."""
        if self.kind != "gradual":
            return
        open_stages = min(len(self.stages), step // self.every + 1)
        trainable = {n for stage in self.stages[:open_stages] for n in stage}
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in trainable)

    def extra_loss(self) -> torch.Tensor | None:
        """The alignment term (weighted), or None without one."""
        from gapeval.toy.data import entity_requests
        from gapeval.toy.model import states_at

        s = self.strategy
        if not s.align:
            return None
        names = list(self.facts)
        und, gen, labels = entity_requests(self.vocab, self.tok, self.rng, self.facts)
        name_ids = [self.vocab.encode_text(n)[0] for n in names]

        def read(prefixes: list[list[int]]) -> torch.Tensor:
            pairs = zip(prefixes, labels, strict=True)
            where = [-1 if s.align_at == "last" else p.index(name_ids[c]) for p, c in pairs]
            return states_at(self.model, prefixes, where)[s.align_layer]

        return s.align * info_nce(read(und), read(gen), s.align_temperature)

    def trained(self) -> UnifiedTransformer:
        """The model to save: LoRA factors merged into the weights; otherwise the model itself."""
        if self.peft is not None:
            merged: UnifiedTransformer = self.peft.merge_and_unload()
            return merged
        return self.model

    def record(self) -> dict[str, Any]:
        """What the training record says about the strategy."""
        out: dict[str, Any] = {"strategy": self.strategy.label()}
        if self.peft is not None:
            out["trainable_params"] = self.n_lora
        elif self.kind != "gradual":
            out["trainable_params"] = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if self.kind == "gradual":
            out["unfreeze_every"] = self.every
            out["stages"] = len(self.stages)
        return out


def check_strategy(strategy: Strategy, model: UnifiedTransformer) -> None:
    """What can only be checked against the model: the modules a ``freeze`` list names, the align layer.

    Raises:
        GapevalError: Naming the strategy's field.

    """
    if strategy.kind == "frozen":
        frozen_parameters(model, strategy.freeze)
    n_states = model.cfg.n_layers + 2
    if strategy.align and not -n_states <= strategy.align_layer < n_states:
        raise GapevalError(f"this model has layer states 0..{n_states - 1} (or -{n_states}..-1)",
                           field="strategy.align_layer")  # fmt: skip
