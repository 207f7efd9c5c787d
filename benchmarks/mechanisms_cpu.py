"""The mechanisms study on 2 CPU cores, as a user runs it, and each variant's training cost.

Two parts:

1. Step time of each architecture against the shipped one (``shared``), measured in this run: the
   shipped recipe's batches, ``--steps`` steps per variant, interleaved in rounds so that the machine's
   load falls on all three alike. Target: each variant within 1.25x of ``shared``.
2. ``gapeval study mechanisms`` with the built-in spec from an empty folder (its defaults, relative
   output folder): trains the three variants with the shipped recipe (8000 steps each) and measures
   them. Target: under 2 hours. ``--variants DIR`` reuses variants already trained there by the same
   recipe (``gapeval toy train --arch A -o DIR/A``, what the study runs); their training time is then the
   one recorded in their logs, printed beside the study's own.

Prints the figures the README and docs/mechanisms.md quote.

``--keep`` leaves ``--out`` as it is, so the study reuses the measurements already in its folder (as a
rerun of the command does); the time printed is then this call's, and each variant's measurement time is
the one recorded when it was measured.

    python benchmarks/mechanisms_cpu.py [--out DIR] [--variants DIR] [--keep] [--steps N] [--skip-study]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 2 * 3600
RATIO_TARGET = 1.25


def step_times(steps: int, rounds: int = 4) -> dict[str, float]:
    """Seconds per training step of each architecture (shipped settings, the same batches)."""
    import numpy as np
    import torch

    from gapeval.toy.data import collate, sample_specs, sequences
    from gapeval.toy.model import ARCHS, ModelConfig, UnifiedTransformer
    from gapeval.toy.tokenizer import ImageTokenizer
    from gapeval.toy.train import TrainConfig, optimise
    from gapeval.toy.vocab import Vocab, world_words

    cfg = TrainConfig()
    torch.set_num_threads(cfg.threads)
    tok = ImageTokenizer.fit(seed=0)
    vocab = Vocab(world_words(), tok.size)
    rng = np.random.default_rng(0)
    pool = sequences(sample_specs(rng, cfg.batch_size * steps), vocab, tok, rng)
    batches = [collate(pool[i * cfg.batch_size : (i + 1) * cfg.batch_size]) for i in range(steps)]
    models, opts = {}, {}
    for arch in ARCHS:
        torch.manual_seed(0)
        shape = ModelConfig(vocab.size, cfg.d_model, cfg.n_layers, cfg.n_heads, arch=arch)
        models[arch] = UnifiedTransformer(shape)
        opts[arch] = torch.optim.AdamW(models[arch].parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        optimise(models[arch], opts[arch], batches[0], cfg.lr)  # warm-up step, not timed
    spent = dict.fromkeys(ARCHS, 0.0)
    per_round = max(1, steps // rounds)
    for r in range(rounds):
        for arch in ARCHS:
            t = time.perf_counter()
            for b in batches[r * per_round : (r + 1) * per_round]:
                optimise(models[arch], opts[arch], b, cfg.lr)
            spent[arch] += time.perf_counter() - t
    return {arch: spent[arch] / (per_round * rounds) for arch in ARCHS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-mechanisms"), help="An empty folder.")
    parser.add_argument("--variants", type=Path, help="Reuse variants trained here (DIR/ARCH/).")
    parser.add_argument("--steps", type=int, default=120, help="Timed steps per architecture.")
    parser.add_argument("--skip-study", action="store_true", help="Only the step times.")
    parser.add_argument("--keep", action="store_true", help="Reuse the measurements already in --out.")
    args = parser.parse_args()
    print(f"cpu cores visible: {os.cpu_count()}; torch threads: 2")
    times = step_times(args.steps)
    for arch, sec in times.items():
        ratio = sec / times["shared"]
        print(f"{arch}: {1000 * sec:.0f} ms/step, {ratio:.2f}x shared (target <= {RATIO_TARGET}x): "
              f"8000 steps ~ {8000 * sec / 60:.0f} min")  # fmt: skip
    if args.skip_study:
        return 0
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "gapeval.cli", "study", "mechanisms"]
    if args.variants is not None:
        spec = args.out / "reuse.yaml"
        spec.write_text(f"variants_dir: {args.variants.resolve()}\n")
        command.append(spec.name)
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=args.out)
    wall = time.perf_counter() - t0
    print(done.stdout)
    if done.returncode != 0:
        print(done.stderr)
        return 1
    result = json.loads((args.out / "study-mechanisms" / "study.json").read_text())
    trained = {v["variant"]: v["train_seconds"] or 0.0 for v in result["variants"]}
    secs = result["seconds"]
    print(f"study: {wall:.0f} s end to end (training in this call {secs['train']:.0f} s, "
          f"measurements {secs['study']:.0f} s)")  # fmt: skip
    total = sum(v["measure_seconds"] for v in result["variants"]) + sum(trained.values())
    print(
        "measurements as recorded when each variant was measured: "
        + ", ".join(f"{v['variant']} {v['measure_seconds']:.0f} s" for v in result["variants"])
    )
    shared = trained.get("shared") or 1.0
    logged = ", ".join(f"{a} {s:.0f} s ({s / shared:.2f}x shared)" for a, s in trained.items())
    print(f"training as recorded in each variant's log: {logged}")
    print(f"all three trained and studied: {total:.0f} s = {total / 3600:.2f} h (target < 2 h: "
          f"{total / TARGET_S:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
