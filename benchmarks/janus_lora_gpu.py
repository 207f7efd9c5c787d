"""LoRA knowledge injection on Janus-Pro-1B at real size (random weights, nothing downloaded), on a GPU.

Builds Janus-Pro-1B with its published sizes (see ``janus_gpu.py``), then trains the knowledge
experiment's LoRA adapter (rank 8 on the language model's q/k/v/o projections) with the code
``gapeval knowledge inject`` calls (:func:`gapeval.experiments.runners.train_lora`), on the built-in
spec's entities rendered by the shapes world, for each arm:

- ``und``: the answer-token loss (image + question -> answer);
- ``gen``: the image-token loss through the generation head (576 VQ tokens per 384 px image);
- ``both``: the two together;

and prints steps/s (steady: without the first two steps) and peak GPU memory at a batch of
``--per-direction`` examples per trained direction. Random weights time the same arithmetic as trained
ones. Not a test: CI has no GPU. ``--tiny`` runs the same code on the tiny test Janus on the CPU, to
check the script itself.

    .venv/bin/python benchmarks/janus_lora_gpu.py [--steps 20] [--per-direction 8] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gapeval.experiments.knowledge import KnowledgeSpec, Sampler, load_spec
from gapeval.experiments.runners import train_lora
from janus_gpu import janus_pro_1b


def build(tiny: bool, dtype: torch.dtype, folder: Path) -> tuple[object, object]:
    if not tiny:
        return janus_pro_1b(dtype, "cuda")
    from transformers import JanusForConditionalGeneration, JanusProcessor

    from gapeval.testing.tiny_models import tiny_janus

    path = tiny_janus(folder / "tiny", trained_heads=True)
    return JanusForConditionalGeneration.from_pretrained(path), JanusProcessor.from_pretrained(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--per-direction", type=int, default=8)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--tiny", action="store_true", help="the tiny test Janus on the CPU")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("needs CUDA (or --tiny)")
    builtin, _ = load_spec(None, "inject")
    train = {"steps": args.steps, "per_direction": args.per_direction, "replay": 0, "warmup": 0}
    spec = KnowledgeSpec.model_validate({**builtin.model_dump(), "model": "janus:random", "train": train})
    for arm in ("und", "gen", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            model, processor = build(args.tiny, getattr(torch, args.dtype), Path(tmp))
            params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
            if torch.cuda.is_available() and not args.tiny:
                torch.cuda.reset_peak_memory_stats()
            record = train_lora(
                model, processor, Sampler(spec, arm, 0, Path(".")), spec.train, Path(tmp) / "a"
            )
        peak = record.get("peak_memory_gib", "n/a (CPU)")
        print(f"{arm}: {params / 1e9:.3f}B params, {record['trainable_params'] / 1e6:.2f}M trainable; "
              f"{record['steady_steps_per_s']} steps/s steady "
              f"({record['steps']} steps, {record['seconds']} s in all; "
              f"{args.per_direction} examples per trained direction per step); peak memory {peak} GiB; "
              f"loss first/last tenth {record['loss']}")  # fmt: skip
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
