"""Held-out accuracy of the built-in model per category and direction, judged exactly."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# Training-time evaluation needs the exact rules; judges never import toy, so no cycle.
from gapeval.judges.scene import check_answer, check_scene
from gapeval.suites.shapes import tasks, world
from gapeval.toy.model import UnifiedTransformer, answer, draw, gen_prefix, und_prefix
from gapeval.toy.tokenizer import ImageTokenizer
from gapeval.toy.vocab import Vocab


def evaluate_specs(
    model: UnifiedTransformer,
    vocab: Vocab,
    tok: ImageTokenizer,
    specs: list[tasks.Spec],
    seed: int = 0,
    batch: int = 256,
) -> dict[str, float]:
    """Accuracy per ``category/direction`` (and ``und``/``gen`` means over categories)."""
    rng = np.random.default_rng(seed)
    und_imgs = tok.encode(
        np.stack([np.asarray(world.render(s.und_scene or world.empty_scene(), rng)) for s in specs])
    )
    gen_imgs = tok.encode(
        np.stack([np.asarray(world.render(s.gen_input or world.empty_scene(), rng)) for s in specs])
    )
    und_pre = [
        und_prefix(vocab, s.und_prompt, und_imgs[i] if s.und_scene is not None else None)
        for i, s in enumerate(specs)
    ]
    gen_pre = [
        gen_prefix(vocab, s.gen_prompt, gen_imgs[i] if s.gen_input is not None else None)
        for i, s in enumerate(specs)
    ]
    answers: list[str] = []
    codes: list[list[int]] = []
    for lo in range(0, len(specs), batch):
        answers += answer(model, vocab, und_pre[lo : lo + batch])
        codes += draw(model, vocab, gen_pre[lo : lo + batch], seeds=[seed + i for i in range(lo, lo + batch)])
    scenes = world.parse_many(tok.decode(np.asarray(codes)))
    hits: dict[str, list[bool]] = defaultdict(list)
    for s, text, scene in zip(specs, answers, scenes, strict=True):
        cat = s.category.value
        hits[f"{cat}/und"].append(check_answer(s.answer_type, s.answer_value, text)[0])
        hits[f"{cat}/gen"].append(check_scene(s.gen_check, scene)[0])
    out = {k: float(np.mean(v)) for k, v in sorted(hits.items())}
    for d in ("und", "gen"):
        out[d] = float(np.mean([v for k, v in out.items() if k.endswith("/" + d)]))
    return out
