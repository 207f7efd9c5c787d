"""How a knowledge experiment trains a model: one runner per model family.

- ``toy`` / ``toy:CHECKPOINT``: fine-tuning of the built-in model on the CPU under the spec's strategy
  (every weight by default; LoRA, frozen modules, gradual unfreezing, an alignment term: see
  :mod:`gapeval.experiments.strategies`). New names get their own tokens first
  (:func:`~gapeval.toy.model.grow_vocabulary`); the grown, untrained model is the
  baseline, so the baseline and every arm share one vocabulary.
- ``janus:PATH``: LoRA (peft) on the language model's attention projections, training the answer
  tokens (understanding), the image tokens through the generation head (generation), or both. The
  adapter is saved per arm and seed, and evaluated with ``--model-opt adapter=DIR`` on the janus adapter.

A runner reuses an arm whose saved record carries the same spec hash, so rerunning an experiment only
trains what is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gapeval.errors import GapevalError

if TYPE_CHECKING:
    from gapeval.experiments.knowledge_data import Example
    from gapeval.experiments.knowledge_spec import KnowledgeSpec, TrainSettings

#: LoRA targets of the Janus language model (its vision tower has projections of the same names).
JANUS_LORA_TARGETS = r".*language_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"


class Runner(Protocol):
    """Builds the baseline and trains arms; each yields a model spec and options to evaluate."""

    def baseline(self, words: Sequence[str]) -> tuple[str, dict[str, str]]:
        """The untrained model to compare against (``words``: the names the experiment teaches)."""
        ...

    def train(
        self, arm: str, seed: int, sampler: Callable[[], list[Example]]
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Train one arm under one seed; returns the model spec, its options and the training record."""
        ...


def runner_for(spec: KnowledgeSpec, folder: Path, digest: str) -> Runner:
    """The runner of the spec's model family.

    Raises:
        GapevalError: A family no runner trains.

    """
    family = spec.model.partition(":")[0]
    if family == "toy":
        return ToyRunner(spec, folder, digest)
    if family == "janus":
        return JanusLoRARunner(spec, folder, digest)
    raise GapevalError(f"knowledge experiments train toy and janus models, not {family!r}", field="model")


class LossLog:
    """Per-step mean loss of each group of examples (``und``, ``gen``, ``replay``)."""

    def __init__(self) -> None:
        self.steps: dict[str, list[float]] = {}

    def add(self, group: str, value: float) -> None:
        """Record one step's mean loss for ``group``."""
        self.steps.setdefault(group, []).append(value)

    def record(self, seconds: float, n_steps: int) -> dict[str, Any]:
        """Steps, seconds, and each group's mean loss over the first and the last tenth of training."""
        tenth = max(1, n_steps // 10)
        loss = {g: [float(np.mean(v[:tenth])), float(np.mean(v[-tenth:]))] for g, v in self.steps.items()}
        curve = {
            g: [round(float(np.mean(v[i : i + tenth])), 4) for i in range(0, len(v), tenth)]
            for g, v in self.steps.items()
        }
        return {
            "steps": n_steps,
            "seconds": round(seconds, 2),
            "steps_per_s": round(n_steps / seconds, 3) if seconds > 0 else None,
            "loss": loss,
            "curve": curve,
        }


def _reuse(path: Path, digest: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved if isinstance(saved, dict) and saved.get("spec_hash") == digest else None


class ToyRunner:
    """Full fine-tuning of the built-in model (CPU, minutes)."""

    def __init__(self, spec: KnowledgeSpec, folder: Path, digest: str) -> None:
        from gapeval.models.toy import checkpoint_path

        self.source = checkpoint_path(spec.model.partition(":")[2])
        self.spec, self.folder, self.digest = spec, folder, digest
        self.base = self.source
        if spec.strategy.kind != "full" or spec.strategy.align:
            # A module the spec names that the model lacks is one line now, before anything is written.
            from gapeval.experiments.strategies import check_strategy
            from gapeval.toy.train import load_checkpoint

            check_strategy(spec.strategy, load_checkpoint(self.source)[0])

    def baseline(self, words: Sequence[str]) -> tuple[str, dict[str, str]]:
        """The source checkpoint, with tokens for any of ``words`` it does not know (mean-initialised)."""
        from gapeval.toy.model import grow_vocabulary
        from gapeval.toy.train import load_checkpoint, save_checkpoint

        model, vocab, tok, meta = load_checkpoint(self.source)
        grown = grow_vocabulary(model, vocab, words)
        if grown is not vocab:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.base = self.folder / "baseline.pt"
            stamp = self.folder / "baseline.json"
            if _reuse(stamp, self.digest) is None or not self.base.is_file():
                save_checkpoint(self.base, model, grown, tok, {**meta, "added_words": grown.extra})
                stamp.write_text(json.dumps({"spec_hash": self.digest, "added_words": grown.extra}))
        return f"toy:{self.base}", {}

    def train(
        self, arm: str, seed: int, sampler: Callable[[], list[Example]]
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Fine-tune from the baseline with AdamW on the arm's batches, under the spec's strategy."""
        import torch

        from gapeval.experiments.strategies import ToyStrategy
        from gapeval.toy.data import collate
        from gapeval.toy.train import load_checkpoint, lr_at, optimise, save_checkpoint

        path = self.folder / f"{arm}-s{seed}.pt"
        stamp = path.with_suffix(".json")
        saved = _reuse(stamp, self.digest)
        if saved is not None and path.is_file():
            return f"toy:{path}", {}, dict(saved["record"])
        s = self.spec.train
        torch.manual_seed(seed)
        torch.set_num_threads(s.threads)
        model, vocab, tok, meta = load_checkpoint(self.base)
        facts = {f.name: f.obj for f in self.spec.facts}
        plan = ToyStrategy(self.spec.strategy, model, vocab, tok, facts, steps=s.steps, lora_rank=s.lora_rank,
                           lora_alpha=s.lora_alpha, seed=seed)  # fmt: skip
        opt = plan.optimizer(s.lr, s.weight_decay)
        log = LossLog()

        def align() -> torch.Tensor | None:
            term = plan.extra_loss()
            if term is not None:
                log.add("align", float(term.detach()))
            return term

        start = time.perf_counter()
        for step in range(s.steps):
            examples = sampler()
            plan.before_step(step)
            batch = collate(toy_sequences(examples, vocab, tok))
            losses = optimise(model, opt, batch, lr_at(step, s), align)
            for group in ("und", "gen", "replay"):
                rows = [i for i, e in enumerate(examples) if _group(e) == group]
                if rows:
                    log.add(group, float(losses[rows].mean()))
        record = {**log.record(time.perf_counter() - start, s.steps), **plan.record()}
        self.folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, plan.trained(), vocab, tok, {**meta, "step": s.steps, "spec_hash": self.digest,
                        "arm": arm, "seed": seed, "strategy": self.spec.strategy.label()})  # fmt: skip
        stamp.write_text(json.dumps({"spec_hash": self.digest, "arm": arm, "seed": seed, "record": record}))
        return f"toy:{path}", {}, record


def _group(e: Example) -> str:
    return "replay" if e.replay else e.direction


def toy_sequences(examples: Sequence[Example], vocab: Any, tok: Any) -> list[tuple[list[int], int]]:
    """Token sequences of the built-in model (with where supervision starts) for ``examples``."""
    from gapeval.toy.model import gen_prefix, und_prefix
    from gapeval.toy.vocab import ENDIMG, EOS

    # One encoder call for the whole batch (one call per image cost more than the training step).
    images = [img for e in examples for img in (e.image, e.target) if img is not None]
    encoded = iter(tok.encode_images(images).tolist())

    def codes(img: Any) -> list[int] | None:
        return None if img is None else [int(c) for c in next(encoded)]

    out: list[tuple[list[int], int]] = []
    for e in examples:
        if e.direction == "und":
            pre = und_prefix(vocab, e.prompt, codes(e.image))
            out.append(([*pre, *vocab.encode_text(e.answer), EOS], len(pre)))
        else:
            pre = gen_prefix(vocab, e.prompt, codes(e.image))
            out.append(([*pre, *vocab.codes(codes(e.target) or []), ENDIMG], len(pre)))
    return out


class JanusLoRARunner:
    """LoRA on a Janus / Janus-Pro checkpoint (``janus:PATH``), GPU or CPU."""

    def __init__(self, spec: KnowledgeSpec, folder: Path, digest: str) -> None:
        from gapeval.models.hf import checkpoint_identity

        self.spec, self.folder, self.digest = spec, folder, digest
        self.base = spec.model.partition(":")[2]
        if not self.base:
            raise GapevalError("name the checkpoint: janus:PATH_OR_HUB_ID", field="model")
        checkpoint_identity(self.base)  # a missing folder is one line now, before anything is written

    def baseline(self, words: Sequence[str]) -> tuple[str, dict[str, str]]:
        """The checkpoint as it is (its tokenizer spells any new name)."""
        return self.spec.model, dict(self.spec.model_options)

    def train(
        self, arm: str, seed: int, sampler: Callable[[], list[Example]]
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Train a LoRA adapter for this arm and seed, saved in ``train/ARM-sSEED/``."""
        out = self.folder / f"{arm}-s{seed}"
        options = {**self.spec.model_options, "adapter": str(out)}
        saved = _reuse(out / "gapeval.json", self.digest)
        if saved is not None and (out / "adapter_config.json").is_file():
            return self.spec.model, options, dict(saved["record"])
        record = janus_lora(self.base, self.spec.model_options, sampler, self.spec.train, seed, out)
        (out / "gapeval.json").write_text(json.dumps({"spec_hash": self.digest, "arm": arm, "seed": seed,
                                                      "record": record}))  # fmt: skip
        return self.spec.model, options, record


def janus_lora(
    base: str,
    options: dict[str, str],
    sampler: Callable[[], list[Example]],
    settings: TrainSettings,
    seed: int,
    out: Path,
) -> dict[str, Any]:
    """Train a LoRA adapter on ``base`` with ``sampler``'s batches and save it (peft format) in ``out``.

    Returns the training record (steps, seconds, steps/s, loss per group at the start and the end, peak
    accelerator memory when on CUDA).
    """
    import torch
    from transformers import JanusForConditionalGeneration, JanusProcessor

    from gapeval.models.hf import load_pretrained, settings_from
    from gapeval.models.janus import JanusSettings

    s = settings_from(JanusSettings, base, {k: v for k, v in options.items() if k != "adapter"}, "janus")
    torch.manual_seed(seed)
    model, processor = load_pretrained(JanusForConditionalGeneration, JanusProcessor, base, s, "janus")
    return train_lora(model, processor, sampler, settings, out)


def train_lora(
    model: Any, processor: Any, sampler: Callable[[], list[Example]], settings: TrainSettings, out: Path
) -> dict[str, Any]:
    """Wrap a loaded Janus in a LoRA adapter, train it on ``sampler``'s batches, save the adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    from gapeval.toy.train import lr_at

    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                        target_modules=JANUS_LORA_TARGETS)  # fmt: skip
    peft_model = get_peft_model(model, config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    log = LossLog()
    start = time.perf_counter()
    for step in range(settings.steps):
        # Janus cannot edit: generation examples with an input image are left out.
        examples = [e for e in sampler() if e.direction == "und" or e.image is None]
        peft_model.train()
        total = torch.zeros((), device=device)
        for group in ("und", "gen", "replay"):
            for direction in ("und", "gen"):
                part = [e for e in examples if _group(e) == group and e.direction == direction]
                if not part:
                    continue
                loss_fn = janus_und_loss if direction == "und" else janus_gen_loss
                loss = loss_fn(model, processor, part)
                log.add(group if group != "replay" else f"replay-{direction}", float(loss.detach()))
                total = total + loss * len(part)
        loss = total / max(1, len(examples))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, settings)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            after_two = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    record = log.record(end - start, settings.steps)
    if settings.steps > 2:
        # Without the first two steps (kernel selection, allocator growth): the rate a long run sees.
        record["steady_steps_per_s"] = round((settings.steps - 2) / (end - after_two), 3)
    record["trainable_params"] = sum(p.numel() for p in params)
    if device.type == "cuda":
        record["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out))
    return record


def janus_und_loss(model: Any, processor: Any, examples: Sequence[Example]) -> Any:
    """Mean cross-entropy of the answer tokens (and end of turn) given image and question."""
    import torch

    from gapeval.models.hf import chat_prompt

    tok = processor.tokenizer
    device = next(model.parameters()).device
    rows, pixels = [], []
    for e in examples:
        # The prompt and the answer are tokenised apart, so the labels start exactly at the answer.
        images = [e.image] if e.image is not None else None
        inputs = processor(text=[chat_prompt(processor, e.prompt, len(images or []))], images=images,
                           return_tensors="pt")  # fmt: skip
        answer = tok(" " + e.answer + tok.eos_token, add_special_tokens=False)["input_ids"]
        prompt = inputs["input_ids"][0].tolist()
        rows.append((prompt, answer))
        if images:
            pixels.append(inputs["pixel_values"])
    width = max(len(p) + len(a) for p, a in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (p, a) in enumerate(rows):
        ids[r, : len(p) + len(a)] = torch.tensor(p + a)
        labels[r, len(p) : len(p) + len(a)] = torch.tensor(a)
        mask[r, : len(p) + len(a)] = 1
    kwargs: dict[str, Any] = {}
    if pixels:
        kwargs["pixel_values"] = torch.cat(pixels).to(device, model.dtype)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device), **kwargs)
    return out.loss


def janus_gen_loss(model: Any, processor: Any, examples: Sequence[Example]) -> Any:
    """Mean cross-entropy of the target image's VQ tokens through the generation head, given the prompt.

    The sequence is the one the janus adapter samples: the chat prompt with the image-start token (left
    padded), then the image tokens' generation embeddings; positions come from the attention mask.
    """
    import torch

    from gapeval.models.janus import image_inputs, image_prompts

    processor.tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    ids, mask = image_inputs(processor, image_prompts(processor, [e.prompt for e in examples]), device)
    pixels = processor.image_processor([e.target for e in examples], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        tokens = model.model.vqmodel.encode(pixels.to(device, model.dtype)).image_tokens.view(
            len(examples), -1
        )
    text = model.get_input_embeddings()(ids)
    image = model.prepare_embeddings_for_image_generation(tokens[:, :-1])
    embeds = torch.cat([text, image.to(text.dtype)], dim=1)
    full = torch.cat([mask, mask.new_ones((mask.shape[0], tokens.shape[1] - 1))], dim=1)
    positions = (full.cumsum(-1) - 1).clamp(min=0)
    hidden = model.model.language_model(inputs_embeds=embeds, attention_mask=full, position_ids=positions)
    logits = model.model.generation_head(hidden.last_hidden_state[:, ids.shape[1] - 1 :, :]).float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def load_toy(arg: str, words: Sequence[str] = ()) -> tuple[Any, Any, Any]:
    """The built-in model of ``toy`` / ``toy:CHECKPOINT``: model, vocabulary and image tokenizer.

    Any of ``words`` it does not know gets its own token, as a knowledge experiment's baseline has them.
    """
    from gapeval.models.toy import checkpoint_path
    from gapeval.toy.model import grow_vocabulary
    from gapeval.toy.train import load_checkpoint

    model, vocab, tok, _ = load_checkpoint(checkpoint_path(arg))
    return model, grow_vocabulary(model, vocab, words), tok


def loss_functions(
    model_spec: str, words: Sequence[str] = (), options: dict[str, str] | None = None
) -> tuple[Any, Callable[[list[Example]], Any], Callable[[list[Example]], Any]]:
    """A model and the loss each direction trains it with in a knowledge experiment (for probes).

    ``toy`` / ``toy:CHECKPOINT``: the mean sequence loss of :func:`toy_sequences` (what
    :class:`ToyRunner` optimises), with tokens for ``words`` the model does not know (as its baseline);
    ``janus:PATH``: :func:`janus_und_loss` and :func:`janus_gen_loss`, the LoRA runner's.

    Raises:
        GapevalError: A family no runner trains, or a checkpoint that does not exist.

    """
    family, _, arg = model_spec.partition(":")
    if family == "toy":
        from gapeval.toy.data import collate
        from gapeval.toy.train import sequence_losses

        model, vocab, tok = load_toy(arg, words)

        def toy_loss(examples: list[Example]) -> Any:
            return sequence_losses(model, collate(toy_sequences(examples, vocab, tok))).mean()

        return model, toy_loss, toy_loss
    if family == "janus":
        from transformers import JanusForConditionalGeneration, JanusProcessor

        from gapeval.models.hf import load_pretrained, settings_from
        from gapeval.models.janus import JanusSettings

        s = settings_from(JanusSettings, arg, dict(options or {}), "janus")
        model, processor = load_pretrained(JanusForConditionalGeneration, JanusProcessor, arg, s, "janus")
        return (model, lambda ex: janus_und_loss(model, processor, ex),
                lambda ex: janus_gen_loss(model, processor, ex))  # fmt: skip
    raise GapevalError(f"probes read toy and janus models, not {family!r}", field="model")
