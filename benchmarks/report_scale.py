"""The HTML report at benchmark scale: 646 items x 5 models, with typical (512 px) images.

Builds a 646-item JSONL suite with a 512x512 question image per item (gradients, shapes and photo-like
grain, about 400 KB as PNG), runs five deterministic models
on it (each answers multiple-choice questions with its own accuracy and draws 512x512 pictures), judges
by rules, writes one report over the five runs, then opens it from disk in Debian's chromium and
measures the time from navigation start until the page is interactive (the item browser rendered),
plus the report folder's size.

    .venv/bin/python benchmarks/report_scale.py [--items 646] [--models 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

from gapeval import api

CATEGORIES = ["Instruction Following", "Numerical Perception", "World Knowledge", "Reasoning"]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]  # fmt: skip

ADAPTER = '''
import hashlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from gapeval.models.base import Capabilities, ImageOutput, TextOutput

def picture(seed, side=512):
    """Gradients, shapes and photo-like grain: compresses like a generated picture, not like flat art."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    a, b, c = rng.uniform(0, 1, 3)
    base = np.stack([a + 0.4 * x, b + 0.4 * y, c + 0.3 * x * y], -1)
    img = Image.fromarray((np.clip(base, 0, 1) * 255).astype("uint8"))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, side - 120, 2)
        r = int(rng.integers(30, 110))
        d.ellipse([x0, y0, x0 + r, y0 + r], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    grain = np.asarray(img, dtype=float) + rng.normal(0, 6, (side, side, 3))
    return Image.fromarray(np.clip(grain, 0, 255).astype("uint8")).filter(ImageFilter.GaussianBlur(0.6))

class Bench:
    name = "bench"
    capabilities = Capabilities(understands=True, generates=True, edits=True)
    batch_size = 64

    def __init__(self, skill):
        self.skill = skill

    @classmethod
    def from_spec(cls, arg, options, context):
        return cls(float(options.get("skill", "0.5")))

    def describe(self):
        return {"family": "bench", "skill": self.skill}

    def understand(self, requests):
        out = []
        for r in requests:
            h = int(hashlib.sha256(r.item_id.encode()).hexdigest()[:8], 16) / 2**32
            out.append(TextOutput(text="B" if h < self.skill else "C"))
        return out

    def generate(self, requests):
        return [ImageOutput(image=picture(r.seed)) for r in requests]
'''


def make_suite(folder: Path, n: int) -> Path:
    import importlib.util
    import sys

    (folder / "img").mkdir(parents=True)
    spec = importlib.util.spec_from_file_location("bench_adapter", folder.parent / "bench_adapter.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_adapter"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    lines = []
    for i in range(n):
        mod.picture(10_000 + i).save(folder / "img" / f"q{i}.png")
        lines.append(json.dumps({
            "id": f"q{i:04d}", "category": CATEGORIES[i % 4], "subcategory": f"kind{i % 7}",
            "und": {"prompt": f"Question {i}: which option is right? (A) one (B) two (C) three",
                    "images": [f"img/q{i}.png"]},
            "gen": {"prompt": f"Draw picture {i}"},
            "refs": {"text": "B", "choice": "B"},
        }))  # fmt: skip
    (folder / "suite.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "suite.jsonl"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=646)
    parser.add_argument("--models", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench_adapter.py").write_text(textwrap.dedent(ADAPTER))
        suite = make_suite(root / "suite", args.items)
        runs = []
        t0 = time.perf_counter()
        for m in range(args.models):
            out = root / f"run{m}"
            api.run(str(suite), f"py:{root / 'bench_adapter.py'}:Bench", out=out, judges=["rules"],
                    model_options={"skill": str(0.3 + 0.15 * m)}, label=f"model-{m}")  # fmt: skip
            runs.append(out)
        t_runs = time.perf_counter() - t0
        t0 = time.perf_counter()
        site = api.report_site(runs, out=root / "report", fragility_n=0, n_boot=50)
        t_report = time.perf_counter() - t0
        report_mb = size_of(root / "report") / 2**20
        runs_mb = sum(size_of(r) for r in runs) / 2**20
        print(f"{args.items} items x {args.models} models: runs {t_runs:.1f} s "
              f"({runs_mb:.0f} MB of run data), report written in {t_report:.1f} s")  # fmt: skip
        print(f"report folder: {report_mb:.1f} MB (target < 100 MB)")

        from playwright.sync_api import sync_playwright

        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            times = []
            for _ in range(5):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(site.index.as_uri())
                page.wait_for_function("window.gapevalReady === true")
                times.append(page.evaluate("window.gapevalReadyAt") / 1000)
                page.close()
            browser.close()
        print(f"time to interactive in chromium (navigation start -> item browser rendered), 5 loads: "
              f"median {sorted(times)[2]:.2f} s, max {max(times):.2f} s (target < 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
