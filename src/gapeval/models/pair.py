"""Two models as one: ``pair:UND_SPEC+GEN_SPEC``, the non-unified baseline the paper compares against.

The first part answers (image + text -> text), the second draws and edits. Capabilities are the union of
what each part does in its own direction; the identity and the description name both parts, so a resume
checks both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue

from gapeval.errors import GapevalError
from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    ModelContext,
    TextOutput,
    UnderstandRequest,
    UnifiedModel,
    load_model,
    model_identity,
)


def _parts(arg: str, options: dict[str, str]) -> tuple[str, str, dict[str, str], dict[str, str]]:
    und, sep, gen = arg.partition("+")
    if not sep or not und or not gen:
        raise GapevalError("a pair is pair:UND_SPEC+GEN_SPEC (e.g. pair:toy+http://host:8900)", field="model")
    if und.startswith("pair:") or gen.startswith("pair:"):
        raise GapevalError("a pair's parts cannot be pairs", field="model")
    # Options go to a part by prefix: und.KEY=VALUE, gen.KEY=VALUE.
    wrong = sorted(k for k in options if not k.startswith(("und.", "gen.")))
    if wrong:
        raise GapevalError(f"pair options are und.KEY or gen.KEY, not {wrong[0]!r}", field="--model-opt")
    und_opts = {k[4:]: v for k, v in options.items() if k.startswith("und.")}
    gen_opts = {k[4:]: v for k, v in options.items() if k.startswith("gen.")}
    return und, gen, und_opts, gen_opts


class PairModel:
    """An understanding model and a generation model evaluated as one."""

    def __init__(self, und: UnifiedModel, gen: UnifiedModel, specs: tuple[str, str]) -> None:
        self.und, self.gen, self.specs = und, gen, specs
        self.name = f"pair:{und.name}+{gen.name}"
        self.capabilities = Capabilities(
            understands=und.capabilities.understands,
            generates=gen.capabilities.generates,
            edits=gen.capabilities.edits,
        )
        self.batch_size = min(int(getattr(und, "batch_size", 8)), int(getattr(gen, "batch_size", 8)))

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """Both parts' identities."""
        und, gen, und_opts, gen_opts = _parts(arg, options)
        return {"und": model_identity(und, und_opts, context), "gen": model_identity(gen, gen_opts, context)}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> PairModel:
        """Build both parts."""
        und, gen, und_opts, gen_opts = _parts(arg, options)
        first = load_model(und, suite=context, options=und_opts)
        second = load_model(gen, suite=context, options=gen_opts)
        return cls(first, second, (und, gen))

    def describe(self) -> dict[str, Any]:
        """Both parts, described."""
        return {
            "family": "pair",
            "und": {"spec": self.specs[0], **self.und.describe()},
            "gen": {"spec": self.specs[1], **self.gen.describe()},
        }

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """The understanding part answers."""
        return self.und.understand(requests)

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """The generation part draws and edits."""
        return self.gen.generate(requests)
