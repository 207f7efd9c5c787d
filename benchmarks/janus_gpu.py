"""Janus-Pro-1B at real size (random weights, nothing downloaded) through the ``janus`` adapter, on a GPU.

Builds ``JanusForConditionalGeneration`` with Janus-Pro-1B's published sizes (SigLIP-L vision tower at
384 px, 24-layer 2048-wide Llama, VQ tokenizer with 16384 codes, 576 image tokens), prints its parameter
count, and measures through :class:`gapeval.models.janus.JanusModel` (the code ``gapeval run`` calls):

- understanding: generated tokens/s (64 new tokens per answer, forced) at batch 1, 4 and 16;
- generation: images/s (576 tokens each, CFG, per-request seeds) at batch 1, 4 and 16;

each against a one-request-at-a-time loop over the same 16 requests, plus peak GPU memory. Not a test:
CI has no GPU.

    .venv/bin/python benchmarks/janus_gpu.py [--dtype bfloat16] [--requests 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from gapeval.models.base import GenerateRequest, UnderstandRequest
from gapeval.models.janus import JanusModel, JanusSettings
from gapeval.testing.tiny_models import byte_tokenizer, chat_template


def janus_pro_1b(dtype: torch.dtype, device: str) -> tuple[object, object]:
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusImageProcessor, JanusProcessor

    tok = byte_tokenizer(
        ["<pad>", "<bos>", "<eos>", "<image_placeholder>", "<begin_of_image>", "<end_of_image>"],
        image_token="<image_placeholder>",
        boi_token="<begin_of_image>",
        eoi_token="<end_of_image>",
    )
    config = JanusConfig(
        # Janus-Pro-1B's language model (the library's default LlamaConfig is a 7B).
        text_config={
            "model_type": "llama",
            "vocab_size": 102400,
            "hidden_size": 2048,
            "intermediate_size": 5632,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "max_position_embeddings": 16384,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        # Vision tower and VQ model: the library defaults, which are Janus-Pro-1B's.
        image_token_id=tok.convert_tokens_to_ids("<image_placeholder>"),
    )
    with torch.device(device):
        model = JanusForConditionalGeneration(config).to(dtype).eval()
    processor = JanusProcessor(
        image_processor=JanusImageProcessor(),
        tokenizer=tok,
        chat_template=chat_template("<image_placeholder>"),
        num_image_tokens=config.vision_config.num_image_tokens,
    )
    return model, processor


def timed(fn: object) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (CI has none; see the README for measured figures)")
        return
    dtype = getattr(torch, args.dtype)
    model, processor = janus_pro_1b(dtype, "cuda")
    n_params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
    print(f"Janus-Pro-1B sizes, random weights: {n_params / 1e9:.3f} B parameters, {args.dtype}, "
          f"{torch.cuda.get_device_name()}")  # fmt: skip
    settings = JanusSettings(max_new_tokens=args.new_tokens, batch_size=16)
    adapter = JanusModel(model, processor, settings, "random:Janus-Pro-1B")
    model.generation_config.min_new_tokens = args.new_tokens  # type: ignore[attr-defined]  # fixed length
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        img = Path(tmp) / "q.png"
        Image.new("RGB", (384, 384), (200, 40, 40)).save(img)
        und = [
            UnderstandRequest(
                item_id=f"u{i}", prompt=f"How many red circles are there? ({i})", images=(str(img),)
            )
            for i in range(n)
        ]
        gen = [
            GenerateRequest(item_id=f"g{i}", prompt=f"three red circles in a row, {i}", seed=i)
            for i in range(n)
        ]
        adapter.understand(und[:1])  # warm-up (kernels, allocator)
        adapter.generate(gen[:1])
        torch.cuda.reset_peak_memory_stats()
        loop_u = timed(lambda: [adapter.understand([r]) for r in und])
        loop_g = timed(lambda: [adapter.generate([r]) for r in gen])
        print(f"one at a time: understanding {n * args.new_tokens / loop_u:8.1f} tokens/s, "
              f"generation {n / loop_g:6.3f} images/s")  # fmt: skip
        for b in (1, 4, 16):
            t_u = timed(lambda b=b: [adapter.understand(und[i : i + b]) for i in range(0, n, b)])
            t_g = timed(lambda b=b: [adapter.generate(gen[i : i + b]) for i in range(0, n, b)])
            print(
                f"batch {b:2d}: understanding {n * args.new_tokens / t_u:8.1f} tokens/s "
                f"({loop_u / t_u:5.2f}x the loop), generation {n / t_g:6.3f} images/s ({loop_g / t_g:5.2f}x)"
            )
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
