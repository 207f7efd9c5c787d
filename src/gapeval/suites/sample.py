"""A small tree in the authors' layout, with one replayed model's outputs and its recorded verdicts.

It exercises every variant the official loader accepts (both ``prompt.json`` shapes, every image and
reference key, the misspelt ``inage/`` folder, a list reference, a counting spec) so that the whole
pipeline can be run and tested offline. ``gapeval sample DIR`` writes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

SAMPLE_MODEL = "demo-umm"
_COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 40)}


def draw(shapes: list[tuple[str, str, int, int]], size: int = 96) -> Image.Image:
    """Draw ``(shape, colour, x, y)`` tuples (circle/square/triangle) on white."""
    img = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(img)
    for shape, colour, x, y in shapes:
        box = (x - 10, y - 10, x + 10, y + 10)
        fill = _COLOURS[colour]
        if shape == "circle":
            pen.ellipse(box, fill=fill)
        elif shape == "square":
            pen.rectangle(box, fill=fill)
        else:
            pen.polygon([(x, y - 11), (x - 11, y + 9), (x + 11, y + 9)], fill=fill)
    return img


def _write(
    folder: Path,
    prompt: Any,
    images: dict[str, Image.Image],
    text: str | None,
    outputs: list[Image.Image],
    verdicts: tuple[int | None, list[int]] | None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.json").write_text(json.dumps(prompt, indent=1))
    for rel, img in images.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(folder / rel)
    mdir = folder / SAMPLE_MODEL
    mdir.mkdir(exist_ok=True)
    if text is not None:
        (mdir / "text.json").write_text(json.dumps({"output_text": text}))
    for k, img in enumerate(outputs):
        img.save(mdir / f"gen_{k}.png")
    if verdicts is not None:
        t, imgs = verdicts
        res = {
            "text_eval": {"status": "ok", "parsed": {"reason": "recorded", "score": t}}
            if t is not None
            else {"status": "error", "error": "api timeout"},
            "image_eval": [
                {
                    "status": "ok",
                    "eval_type": "image",
                    "generated_image": str(mdir / f"gen_{k}.png"),
                    "parsed": {"reason": "recorded", "judge_result": v},
                }
                for k, v in enumerate(imgs)
            ],
        }
        (mdir / "new_res.json").write_text(json.dumps(res))


def write_sample_tree(root: str | Path) -> Path:
    """Write the sample tree (12 items over the five source category strings) under ``root``."""
    root = Path(root)
    three = draw([("circle", "red", 20, 30), ("circle", "red", 50, 30), ("square", "blue", 70, 70)])
    puzzle = draw([("square", "green", 20, 20), ("circle", "green", 48, 20), ("triangle", "green", 76, 20)])
    marked = puzzle.copy()
    ImageDraw.Draw(marked).ellipse((36, 8, 60, 32), outline=(0, 0, 0), width=3)
    scene = draw([("triangle", "yellow", 48, 48)])
    other = draw([("square", "red", 30, 60), ("circle", "blue", 60, 30)])
    items: list[
        tuple[
            str,
            Any,
            dict[str, Image.Image],
            str | None,
            list[Image.Image],
            tuple[int | None, list[int]] | None,
        ]
    ] = [
        # counting (Numerical Perception): count-swap, structured task spec, image under image/
        (
            "data_1",
            {
                "id": "cnt-1",
                "category": "counting",
                "subcategory": "Objects Counting",
                "und_prompt": "How many red circles and blue squares are there?",
                "gen_prompt": "Edit the image so that it shows 3 blue squares and 2 red circles.",
                "task": [{"object": "red circle", "number": 2}, {"object": "blue square", "number": 1}],
                "reference": "2 red circles, 1 blue square",
            },
            {"image/q.png": three},
            "I see 2 red circles and 1 blue square.",
            [other],
            (1, [0]),
        ),
        (
            "data_2",
            [
                {
                    "id": "cnt-2",
                    "category": "counting",
                    "subcategory": "Animals Counting",
                    "problem": "Count the shapes: how many red circles?",
                    "gen_prompt": "Add one red circle.",
                    "explain": {"red circle": 2},
                }
            ],
            {"inage/q.png": three},
            "There are three red circles.",
            [three],
            (0, [0]),
        ),
        # rule_based (Instruction Following): list reference, img key
        (
            "data_3",
            {
                "id": "rule-1",
                "category": "rule_based",
                "subcategory": "colour swap",
                "und_prompt": "If every red shape turned blue, what colour would the circles be?",
                "gen_prompt": "Turn every red shape blue.",
                "img": "q.png",
                "reference": ["blue", "all circles become blue"],
            },
            {"q.png": three},
            "Answer: blue",
            [other],
            (1, [1]),
        ),
        (
            "data_4",
            {
                "id": "rule-2",
                "category": "rule_based",
                "subcategory": "remove",
                "und_prompt": "Remove the square. What remains?",
                "gen_prompt": "Remove the blue square.",
                "image": "input/scene.png",
                "expect_text": "two red circles",
                "expect_image": "ref_out.png",
            },
            {"input/scene.png": three, "ref_out.png": other},
            "Answer: two red circles",
            [other],
            (1, [0]),
        ),
        # Multi Hop (World Knowledge, text-to-image): reference image under ref/, answer key
        (
            "data_5",
            {
                "id": "wk-1",
                "category": "Multi Hop",
                "subcategory": "animal",
                "und_prompt": "The pet of the wizard is a zorp. What shape is a zorp?",
                "gen_prompt": "Draw the wizard's pet.",
                "answer": "triangle",
            },
            {"ref/zorp.png": scene},
            "A zorp is a yellow triangle.",
            [scene],
            (1, [1]),
        ),
        (
            "data_6",
            {
                "id": "wk-2",
                "category": "Multi Hop",
                "subcategory": "landmark",
                "und_prompt": "Which landmark is 300 m tall and in Paris? Describe it in detail.",
                "gen_prompt": "Draw the landmark.",
                "gt_prompt": "The Eiffel Tower, a wrought-iron lattice tower on the Champ de Mars in Paris",
            },
            {},
            "It is the Eiffel Tower.",
            [other, scene],
            (1, [0, 1]),
        ),
        # reasoning: mmlu/mmmu and puzzle (multiple choice), draw; input_image key
        (
            "data_7",
            {
                "id": "rs-1",
                "category": "reasoning",
                "subcategory": "mmlu/mmmu",
                "und_prompt": "Which option is the circle? (A) left (B) middle (C) right",
                "gen_prompt": "Circle the correct option in the image.",
                "input_image": "question.png",
                "reference": "B",
            },
            {"question.png": puzzle},
            "The circle is in the middle.\nAnswer: (B)",
            [marked],
            (1, [1]),
        ),
        (
            "data_8",
            {
                "id": "rs-2",
                "category": "reasoning",
                "subcategory": "puzzle",
                "und_prompt": "Which shape has three sides? A, B or C?",
                "gen_prompt": "Mark the shape with three sides.",
                "reference": "C",
            },
            {"image/p.png": puzzle},
            "I think A... no wait. Final answer: A",
            [puzzle],
            (0, [0]),
        ),
        (
            "data_9",
            {
                "id": "rs-3",
                "category": "reasoning",
                "subcategory": "draw",
                "und_prompt": "Describe the line that joins the two red circles.",
                "gen_prompt": "Draw a line joining the two red circles.",
                "reference": "a horizontal line between them",
            },
            {"image/q.png": three, "ref/answer.png": other},
            "A horizontal line between them.",
            [other],
            (1, [1]),
        ),
        # physics (Reasoning): long reference, only a model judge can decide it
        (
            "data_10",
            {
                "id": "ph-1",
                "category": "physics",
                "subcategory": "gravity",
                "und_prompt": "A ball is dropped next to the triangle. Where is it after one second?",
                "gen_prompt": "Show where the ball is after one second.",
                "reference": "It has fallen about five metres and lies below its starting point, on the "
                "ground next to the triangle",
            },
            {"image/q.png": scene},
            "It fell down to the ground.",
            [scene],
            (1, [0]),
        ),
        (
            "data_11",
            {
                "id": "ph-2",
                "category": "physics",
                "subcategory": "count",
                "und_prompt": "How many shapes are there after one more is added?",
                "gen_prompt": "Add one more shape.",
                "reference": "4",
            },
            {"image/q.png": three},
            "After adding one there are 4 shapes.",
            [other],
            None,
        ),
        (
            "data_12",
            {
                "id": "rule-3",
                "category": "rule_based",
                "subcategory": "mirror",
                "und_prompt": "Mirror the image left-right. Which side is the square on now?",
                "gen_prompt": "Mirror the image left to right.",
                "reference": "left",
            },
            {"image/q.png": three},
            "The square is now on the left side.",
            [],
            (None, []),
        ),
    ]
    for name, prompt, images, text, outs, verdicts in items:
        _write(root / name, prompt, images, text, outs, verdicts)
    return root
