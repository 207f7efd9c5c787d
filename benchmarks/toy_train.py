"""Train the built-in model from scratch and evaluate every checkpoint on the held-out shapes-v1 split.

Prints the training time, and per checkpoint the held-out accuracy per category and direction (one image
sample per prompt; the demo uses the suite's three). Also prints the chance levels (majority answer
for text; random image codes for images) and the share of test prompts that occur verbatim in training.
Writes ``curves.json`` and ``curves.png`` into the output folder.

    .venv/bin/python benchmarks/toy_train.py --out toy-train            # train (~30 min) + evaluate
    .venv/bin/python benchmarks/toy_train.py --out toy-train --eval-only
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gapeval.items import Category
from gapeval.judges.scene import check_scene
from gapeval.suites.shapes import SHAPES_SUITES, specs, tasks, world
from gapeval.toy.data import sample_specs
from gapeval.toy.evaluate import evaluate_specs
from gapeval.toy.tokenizer import ImageTokenizer
from gapeval.toy.train import TrainConfig, load_checkpoint, train


def chance(test: list[tasks.Spec], tok: ImageTokenizer, rng: np.random.Generator) -> dict[str, float]:
    """Majority-answer share for text; pass rate of uniformly random image codes for images."""
    out: dict[str, float] = {}
    for cat in Category:
        group = [s for s in test if s.category is cat]
        answers = Counter(s.answer for s in group)
        out[f"{cat.value}/und"] = answers.most_common(1)[0][1] / len(group)
        scenes = world.parse_many(tok.decode(rng.integers(tok.size, size=(len(group), 9))))
        out[f"{cat.value}/gen"] = float(
            np.mean([check_scene(s.gen_check, sc)[0] for s, sc in zip(group, scenes, strict=True)])
        )
    return out


def overlap(test: list[tasks.Spec], n_train: int, seed: int) -> dict[str, float]:
    """Share of test prompts seen verbatim among ``n_train`` training items (text; text + input scene)."""
    train_specs = sample_specs(np.random.default_rng(seed), n_train)
    und_text = {s.und_prompt for s in train_specs}
    und_full = {(s.und_prompt, s.und_scene) for s in train_specs}
    gen_text = {s.gen_prompt for s in train_specs}
    gen_full = {(s.gen_prompt, s.gen_input) for s in train_specs}
    out: dict[str, float] = {}
    for cat in Category:
        group = [s for s in test if s.category is cat]
        out[f"{cat.value}/und text"] = float(np.mean([s.und_prompt in und_text for s in group]))
        out[f"{cat.value}/und text+image"] = float(
            np.mean([(s.und_prompt, s.und_scene) in und_full for s in group])
        )
        out[f"{cat.value}/gen text"] = float(np.mean([s.gen_prompt in gen_text for s in group]))
        out[f"{cat.value}/gen text+image"] = float(
            np.mean([(s.gen_prompt, s.gen_input) in gen_full for s in group])
        )
    return out


def plot(curves: list[dict[str, float]], path: Path) -> None:
    """A small line chart of held-out und/gen accuracy against training minutes."""
    w, h, pad = 560, 320, 40
    img = Image.new("RGB", (w, h), "white")
    pen = ImageDraw.Draw(img)
    pen.rectangle((pad, 10, w - 10, h - pad), outline=(0, 0, 0))
    xmax = max(c["minutes"] for c in curves) or 1.0
    for y in (0.25, 0.5, 0.75, 1.0):
        yy = h - pad - y * (h - pad - 10)
        pen.line((pad, yy, w - 10, yy), fill=(220, 220, 220))
        pen.text((5, yy - 6), f"{y:.2f}", fill=(0, 0, 0))
    for key, colour in (("und", (40, 80, 220)), ("gen", (220, 40, 40))):
        pts = [
            (pad + c["minutes"] / xmax * (w - pad - 10), h - pad - c[key] * (h - pad - 10)) for c in curves
        ]
        pen.line(pts, fill=colour, width=2)
        pen.text((w - 120, 20 + (0 if key == "und" else 14)), f"{key} (held-out)", fill=colour)
    pen.text((w // 2 - 60, h - pad + 12), f"training minutes (0-{xmax:.0f})", fill=(0, 0, 0))
    img.save(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("toy-train"))
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    args = parser.parse_args()
    if not args.eval_only:
        t0 = time.perf_counter()
        train(args.out, TrainConfig(steps=args.steps))
        print(
            f"training from scratch: {time.perf_counter() - t0:.0f} s wall ({args.steps} steps)", flush=True
        )
    seed, per_cat, _ = SHAPES_SUITES["shapes-v1"]
    test = specs(seed, per_cat)
    log = [json.loads(line) for line in (args.out / "train_log.jsonl").read_text().splitlines()]
    curves = []
    for rec in log:
        model, vocab, tok, _ = load_checkpoint(args.out / f"step_{rec['step']:05d}.pt")
        res = evaluate_specs(model, vocab, tok, test)
        res["step"], res["minutes"] = rec["step"], rec["elapsed_s"] / 60
        curves.append(res)
        cells = "  ".join(
            f"{c.value[:4]} {res[c.value + '/und']:.2f}/{res[c.value + '/gen']:.2f}" for c in Category
        )
        print(
            f"step {rec['step']:5d}  {res['minutes']:5.1f} min  und {res['und']:.3f}  gen {res['gen']:.3f}  "
            f"[und/gen] {cells}",
            flush=True,
        )
    ch = chance(test, tok, np.random.default_rng(0))
    final = curves[-1]
    print("chance (text: majority answer; image: uniformly random codes), and final / chance:")
    for cat in Category:
        for d in ("und", "gen"):
            k = f"{cat.value}/{d}"
            ratio = final[k] / ch[k] if ch[k] > 0 else float("inf")
            print(f"  {k:28s} chance {ch[k]:.3f}  final {final[k]:.3f}  ratio {ratio:.1f}x")
    ov = overlap(test, 100_000, 1)
    print("test prompts seen verbatim in 100k training items:")
    for k, v in ov.items():
        print(f"  {k:40s} {v:.3f}")
    (args.out / "curves.json").write_text(
        json.dumps({"curves": curves, "chance": ch, "overlap": ov}, indent=1)
    )
    plot(curves, args.out / "curves.png")


if __name__ == "__main__":
    main()
