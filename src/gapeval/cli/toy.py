"""``gapeval toy train``: train the built-in unified model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gapeval.cli.shell import app, err, guard, say

toy_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="The built-in unified model.")
app.add_typer(toy_app, name="toy")


@toy_app.command("train")
def toy_train_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint folder.")] = Path("toy-train"),
    # The defaults are TrainConfig's, the shipped weights' settings (kept literal so that --help does not
    # import torch; a test keeps the two in step).
    steps: int = 8000,
    batch_size: int = 96,
    d_model: int = 128,
    layers: int = 4,
    seed: int = 0,
    checkpoint_every: int = 800,
    eval_items: Annotated[
        int, typer.Option(help="Held-out items per checkpoint evaluation (0: none).")
    ] = 400,
    init: Annotated[Path | None, typer.Option(help="Fine-tune from this checkpoint.")] = None,
    arch: Annotated[
        str,
        typer.Option(
            help="shared (every token through the same weights), mot (generation tokens through their own "
            "norms, projections and MLPs, attention shared) or towers (two stacks sharing the embeddings)."
        ),
    ] = "shared",
) -> None:
    """Train the built-in model from scratch (reproducible: fixed seeds, fresh procedural data)."""
    from gapeval import api

    def go() -> None:
        columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn())  # fmt: skip
        # The bar starts with the first step: a folder that cannot be made is one line, without a bar.
        bar = Progress(*columns, console=err)
        task = bar.add_task("training", total=steps)

        def on_step(step: int, loss: float) -> None:
            bar.start()
            bar.update(task, completed=step, description=f"training (loss {loss:.3f})")

        def on_eval(res: dict[str, float]) -> None:
            bar.console.print(f"held-out: und {res['und']:.3f}  gen {res['gen']:.3f}", markup=False)

        try:
            final = api.train_toy(out_dir, eval_items=eval_items, init=init, on_step=on_step, on_eval=on_eval,
                                  steps=steps, batch_size=batch_size, d_model=d_model, n_layers=layers,
                                  seed=seed, checkpoint_every=checkpoint_every, arch=arch)  # fmt: skip
        finally:
            bar.stop()
        say(f"final checkpoint: {final}; log: {out_dir / 'train_log.jsonl'}")

    guard(go)
