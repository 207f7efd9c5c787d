"""False-pass rate of the exact scene judge on images that are no picture of the shapes world.

For each hostile kind (black, white, noise, photo-like, off-palette), N seeded images are judged against
every generation check of ``shapes-v1`` (1,280 items). A pass is false unless the empty grid is the right
answer (only a white canvas can be that). Printed next to it, for the same checks: the pass rate of
images the world renders from the right scenes (must stay 1.0) and of the built-in model's decoded codes.

    .venv/bin/python benchmarks/scene_judge_false_pass.py [--n 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gapeval.judges.scene import check_scene, judge_image
from gapeval.suites import load_suite
from gapeval.suites.shapes import world
from gapeval.testing.hostile_images import KINDS, hostile_image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300, help="images per kind")
    args = parser.parse_args()
    suite = load_suite("shapes-v1")
    checks = [(i.refs.structured["gen_check"], i.refs.structured["gen_target"]) for i in suite.items]  # type: ignore[index]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for kind in KINDS:
        false = judged = readable = 0
        for _ in range(args.n):
            img = hostile_image(kind, rng)
            scene, unreadable = world.read(img)
            readable += not unreadable
            for check, target in checks:
                judged += 1
                if unreadable:
                    continue
                ok, _ = check_scene(check, scene)
                empty_is_right = all(c is None for c in target)
                false += ok and not empty_is_right
        print(
            f"{kind:12s} images {args.n}, fully readable {readable}, judged {judged}, "
            f"false passes {false} (rate {false / judged:.4f})"
        )
    right = sum(
        judge_image(c, world.render(tuple(tuple(o) if o else None for o in t), rng))[0] for c, t in checks
    )
    print(f"right scenes rendered with jitter: {right}/{len(checks)} pass")
    print(f"time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
