"""Training sequences: items of the train split, rendered with jitter, tokenised, both directions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from gapeval.items import Category
from gapeval.suites.shapes import tasks, world
from gapeval.toy.model import gen_prefix, und_prefix
from gapeval.toy.tokenizer import ImageTokenizer
from gapeval.toy.vocab import ENDIMG, EOS, PAD, Vocab

_KINDS_BY_CATEGORY = {c: [k for k, (cc, _) in tasks.KINDS.items() if cc is c] for c in Category}


@dataclass
class Batch:
    """Right-padded token ids and the loss mask (1 on tokens the model must predict)."""

    ids: torch.Tensor
    mask: torch.Tensor


def sample_specs(
    rng: np.random.Generator, n: int, split: str = "train", kinds: list[str] | None = None
) -> list[tasks.Spec]:
    """``n`` specs, categories balanced, kinds uniform within a category (or drawn from ``kinds``)."""
    out = []
    for _ in range(n):
        if kinds:
            kind = kinds[int(rng.integers(len(kinds)))]
        else:
            cat = list(Category)[int(rng.integers(4))]
            pool = _KINDS_BY_CATEGORY[cat]
            kind = pool[int(rng.integers(len(pool)))]
        out.append(tasks.sample(kind, rng, split))
    return out


def worked_answer(spec: tasks.Spec) -> str:
    """The answer text the built-in model is trained to produce for ``spec``'s understanding question.

    Questions that compose several look-ups are answered with the look-ups first, as a short scratchpad,
    so the model learns steps it can see rather than one opaque token:

    - a spatial relation: where A is, where B is, then yes/no;
    - a count, and a rule applied to the image (which is a count of the cells the rule leaves matching):
      the matching cells in reading order, numbered, so the answer is the last number and each step is
      "the next matching cell" rather than a sum held in one position;
    - a pattern: the missing object, then the option that names it.

    The suite's judge reads the last stated yes/no, number or option, as it does for any model's
    free-form reply; every other kind is answered with the reference answer itself.
    """
    scene = spec.und_scene
    if scene is None or spec.kind not in ("relation", "count", "rule", "pattern"):
        return spec.answer
    if spec.kind == "relation":
        a, _, b = spec.key
        # "and" keeps "bottom and right" apart from "bottom right".
        return f"{world.POSITIONS[scene.index(a)]} and {world.POSITIONS[scene.index(b)]} {spec.answer}"
    if spec.kind == "pattern":
        colours, shapes, missing = spec.key
        row, col = world.row_col(missing)
        return f"{tasks.obj_words((colours[row], shapes[col]))} option {spec.answer}"
    cells = [i for i, o in enumerate(scene) if o is not None and _counted(spec, o)]
    return " ".join([f"{k} {world.POSITIONS[c]}" for k, c in enumerate(cells, 1)] + [str(len(cells))])


def _counted(spec: tasks.Spec, obj: world.Obj) -> bool:
    """Whether ``obj`` counts towards the answer of a count or rule question."""
    if spec.kind == "count":
        return bool(obj == spec.key[0])
    rule, *args = spec.key
    if rule == "recolour":
        return obj[0] in args  # every c1 becomes c2: the c1 and c2 shapes
    if rule == "remove":
        return bool(obj[1] != args[0])  # what is left
    return obj[1] in args  # every s1 becomes s2: the s1 and s2 shapes


def sequences(
    specs: list[tasks.Spec],
    vocab: Vocab,
    tok: ImageTokenizer,
    rng: np.random.Generator,
    directions: tuple[str, ...] = ("und", "gen"),
) -> list[tuple[list[int], int]]:
    """Token sequences with the index where the supervised part starts."""
    scenes: list[world.Scene] = []
    for s in specs:
        scenes += [s.und_scene or world.empty_scene(), s.gen_input or world.empty_scene(), s.gen_target]
    imgs = np.stack([np.asarray(world.render(sc, rng)) for sc in scenes])
    codes = tok.encode(imgs).reshape(len(specs), 3, 9)
    out: list[tuple[list[int], int]] = []
    for s, c in zip(specs, codes, strict=True):
        if "und" in directions:
            pre = und_prefix(vocab, s.und_prompt, c[0] if s.und_scene is not None else None)
            out.append(([*pre, *vocab.encode_text(worked_answer(s)), EOS], len(pre)))
        if "gen" in directions:
            pre = gen_prefix(vocab, s.gen_prompt, c[1] if s.gen_input is not None else None)
            out.append(([*pre, *vocab.codes(c[2]), ENDIMG], len(pre)))
    return out


def collate(seqs: list[tuple[list[int], int]]) -> Batch:
    """Right-pad (harmless under causal attention) and mask the supervised positions."""
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.float32)
    for i, (s, start) in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, start : len(s)] = 1.0
    return Batch(ids, mask)


def entity_requests(
    vocab: Vocab,
    tok: ImageTokenizer,
    rng: np.random.Generator,
    entities: Mapping[str, world.Obj],
    rounds: int = 1,
) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Paired requests about entities: for each round and entity, one in each direction.

    Understanding: "where is the E" with a drawn scene that holds E's look in a random cell; generation:
    "draw a E in P" (no input image). Used where the two paths' states of the same fact are compared
    (the representation probe) or pulled together (the alignment term of a knowledge experiment).

    Returns:
        The understanding prefixes, the generation prefixes and each pair's entity index.

    """
    names = list(entities)
    und, gen, labels = [], [], []
    for _ in range(rounds):
        for c, name in enumerate(names):
            spec = tasks.entity_spec(rng, name, int(rng.integers(world.GRID * world.GRID)), entities[name])
            assert spec.und_scene is not None  # an entity question always shows its scene
            (codes,) = tok.encode_images([world.render(spec.und_scene, rng)]).tolist()
            und.append(und_prefix(vocab, spec.und_prompt, [int(x) for x in codes]))
            gen.append(gen_prefix(vocab, spec.gen_prompt, None))
            labels.append(c)
    return und, gen, labels
