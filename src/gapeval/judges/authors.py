"""The authors' judge, on demand: their template files, converted into a rubric directory of ours.

``gapeval rubrics import-authors THEIR_CHECKOUT -o DIR`` reads the template files of the authors'
repository (Lucky-Wang-Chenlong/GapEval, ``utils/prompt_templates/*.yaml``) from the user's own checkout
and writes one rubric file per route into DIR; ``--rubrics DIR`` then judges with them. Their text never
enters this repository: what lives here is what their judging script *does* with it, as read from
``llm_judge_pipeline_gpt5pro_shard.py`` — which template governs which (category, subcategory,
direction) (``PROMPT_MAP`` and ``get_prompt_config``), the variables each call passes, which images go in
which order and how each is found in the item's folder, the request settings of text and image calls,
the two-turn follow-up of text calls, the multiple-choice flow (an image is judged for consistency with
the text answer when that answer was judged wrong), and how a reply is read.

Where their script refuses an item (a required image or field is missing; a template it names is not
in the checkout) gapeval abstains on that output with the reason, instead of guessing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gapeval.errors import GapevalError
from gapeval.items import Item
from gapeval.judges.rubric import ImageSlot, load_rubric

#: Where their template files lie in their checkout.
TEMPLATE_DIR = Path("utils") / "prompt_templates"
#: Their judging script (read, when present, to check that the routes below still match it).
SCRIPT = "llm_judge_pipeline_gpt5pro_shard.py"
#: Written beside the rubrics: where they came from and the hash of each source file.
MANIFEST = "authors-import.json"

# Their text calls ask OpenRouter for reasoning and a large budget, and ask twice; image calls once.
TEXT_REQUEST: dict[str, Any] = {"reasoning": {"enabled": True}, "max_tokens": 99999}
IMAGE_REQUEST: dict[str, Any] = {"max_tokens": 99999}
FOLLOW_UP = {"text": "Are you sure? Think carefully.", "carry": ["reasoning_details"]}

_Q = "'see attached question image'"
_R = "'see attached reference image'"
_A = "'see attached answer image'"
_G = "'see attached generated image'"
# How their script finds each image of an item folder (``find_problem_image``,
# ``find_reference_image``, ``find_ref_only_image``, and physics' prompt.json fallbacks).
_PROBLEM = {"name": "problem", "lookup": ["folder:image", "folder:inage"], "otherwise": "question"}
_PROBLEM_OR_IMG = {**_PROBLEM, "lookup": ["folder:image", "folder:inage", "record:img"]}
_REF_ANY = {"name": "reference", "lookup": ["folder:ref", "folder:image", "folder:inage"],
            "otherwise": "reference"}  # fmt: skip
_REF_ANY_OR_EXPECT = {**_REF_ANY, "lookup": [*_REF_ANY["lookup"], "record:expect_image"]}
_REF_ONLY = {"name": "reference", "lookup": ["folder:ref"], "otherwise": "reference"}
_OUTPUT = {"name": "output", "lookup": ["output"], "otherwise": "output"}


@dataclass(frozen=True)
class Route:
    """One template of theirs and everything their script does around it."""

    template: str
    rubric_id: str
    category: str
    direction: str
    subcategories: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    images: tuple[dict[str, Any], ...] = ()
    requires: tuple[str, ...] = ()
    fallback_for: tuple[str, ...] = ()
    text_gate: bool = False


def _choice(kind: str, sub: str, text: str, image: str, balance: str) -> list[Route]:
    needs = ("problem", "reference_text")  # their multiple-choice branch refuses items without these
    return [
        Route(text, f"authors-{kind}-und", "reasoning", "und", (sub,),
              {"question_image": _Q, "correct_option": "reference_text", "generated_answer": "output_raw"},
              (_PROBLEM,), needs),
        Route(image, f"authors-{kind}-gen", "reasoning", "gen", (sub,),
              {"question_image": _Q, "correct_option": "reference_text", "answer_image": _A},
              (_PROBLEM, _OUTPUT), needs, text_gate=True),
        Route(balance, f"authors-{kind}-balance", "reasoning", "balance", (sub,),
              {"question_image": _Q, "generated_text": "model_raw", "answer_image": _A},
              (_PROBLEM, _OUTPUT), needs),
    ]  # fmt: skip


#: Every route of their ``PROMPT_MAP`` and ``get_prompt_config``, as their script calls it.
ROUTES: tuple[Route, ...] = (
    *[
        Route(f"counting_text_{kind}_eval.yaml", f"authors-counting-{kind}-und", "counting", "und",
              subs, {"task_reference": "reference_text", "generated_text": "output_raw"},
              fallback_for=fb)
        for kind, subs, fb in (("animal", ("Animals Counting",), ()),
                               ("object", (), ("Numerical Perception",)))
    ],
    *[
        Route(f"counting_image_{kind}_eval.yaml", f"authors-counting-{kind}-gen", "counting", "gen",
              subs, {"task_reference": "reference_text", "generated_image": _G,
                     "reference_answer_image": _R},
              ({**_OUTPUT}, _REF_ANY), ("reference",), fb)
        for kind, subs, fb in (("animal", ("Animals Counting",), ()),
                               ("object", (), ("Numerical Perception",)))
    ],
    Route("draw_reasoning_text_eval.yaml", "authors-draw-und", "reasoning", "und", ("draw",),
          {"question_image": _Q, "task_text": "problem_text", "reference_answer_image": _R,
           "generated_text": "output_raw"},
          (_PROBLEM, _REF_ONLY), ("problem", "reference", "problem_text")),
    Route("draw_reasoning_image_eval.yaml", "authors-draw-gen", "reasoning", "gen", ("draw",),
          {"question_image": _Q, "task_text": "problem_text", "reference_answer_image": _R,
           "answer_image": _A},
          (_PROBLEM, _REF_ONLY, _OUTPUT), ("problem", "reference", "problem_text")),
    *_choice("mmlu", "mmlu/mmmu", "mmmu_mmlu_reasoning_choice_text_eval.yaml",
             "mmmu_mmlureasoning_choice_image_eval.yaml", "mmmu_mmlu_reasoning_image_text_balance.yaml"),
    *_choice("puzzle", "puzzle", "reasoning_choice_text_eval.yaml", "reasoning_choice_image_eval.yaml",
             "reasoning_image_text_balance.yaml"),
    Route("multi_hop_text_eval.yaml", "authors-multi-hop-und", "Multi Hop", "und", (),
          {"reference_image": f"{_R} if images.reference else 'no reference image'",
           "reference_text": "reference_text", "generated_text": "output_raw"},
          (_REF_ANY,), fallback_for=("World Knowledge",)),
    Route("multi_hop_image_eval.yaml", "authors-multi-hop-gen", "Multi Hop", "gen", (),
          {"reference_image": f"{_R} if images.reference else 'no reference image'",
           "reference_caption": "reference_text", "generated_image": _G},
          (_REF_ANY, _OUTPUT), fallback_for=("World Knowledge",)),
    Route("physics_text_eval.yaml", "authors-physics-und", "physics", "und", (),
          {"problem": "problem_text", "reference_answer": "reference_text",
           "generated_text": "output_raw"},
          (), ("problem_text",), ("Reasoning",)),
    Route("physics_image_eval.yaml", "authors-physics-gen", "physics", "gen", (),
          {"problem_text": "problem_text", "reference_text": "reference_text"},
          (_PROBLEM_OR_IMG, _REF_ANY_OR_EXPECT, _OUTPUT), ("problem_text",), ("Reasoning",)),
    Route("rule_based_text_eval.yaml", "authors-rule-based-und", "rule_based", "und", (),
          {"rule": "problem_text", "reference_text": "reference_text", "generated_text": "output_raw"},
          (), ("problem_text",), ("Instruction Following",)),
    Route("rule_based_image_eval.yaml", "authors-rule-based-gen", "rule_based", "gen", (),
          {"original_image": "'see attached original image'", "rule": "gen_prompt",
           "reference_image": _R, "generated_image": _G},
          (_PROBLEM, _REF_ONLY, _OUTPUT), ("gen_prompt", "problem", "reference"),
          ("Instruction Following",)),
)  # fmt: skip


@dataclass
class ImportReport:
    """What ``import_authors`` wrote.

    Attributes:
        out: The rubric directory.
        written: The rubric files written, by the template they came from.
        missing: Templates their script names that the checkout lacks (the items they govern abstain,
            as their script errors on them).
        commit: The checkout's git commit, when it is a git checkout.

    """

    out: Path
    written: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    commit: str | None = None


class _Block(yaml.SafeDumper):
    """Dumps multi-line strings as literal blocks (readable; PyYAML quotes those it cannot keep)."""


def _block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Block.add_representer(str, _block)


def _their_yaml_names(script: Path) -> set[str]:
    """Every ``*.yaml`` string literal in their script (its routing names its templates so)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise GapevalError(f"not readable Python ({exc.__class__.__name__})", file=script) from exc
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith(".yaml")
    }


def _read_template(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GapevalError(f"not valid YAML ({exc.__class__.__name__})", file=path) from exc
    if not isinstance(data, dict):
        raise GapevalError("a template file is a YAML mapping", file=path)
    for key in ("system_prompt", "template"):
        # Their loader defaults a missing key to ""; a template that is not text cannot be rendered.
        if not isinstance(data.get(key, ""), str):
            raise GapevalError("must be text", file=path, field=key)
    args = data.get("jinja_args", [])
    if not isinstance(args, list):
        raise GapevalError("must be a list", file=path, field="jinja_args")
    return data


def _commit(repo: Path) -> str | None:
    if not (repo / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _rubric(route: Route, data: dict[str, Any]) -> dict[str, Any]:
    variables = dict(route.variables)
    images = [dict(s) for s in route.images]
    requires = list(route.requires)
    if route.text_gate and "reference_answer_image" in data.get("jinja_args", []):
        # Their choice-image call adds the reference image when the template asks for it.
        variables["reference_answer_image"] = _R
        images.insert(1, dict(_REF_ONLY))
        requires.append("reference")
    text_call = route.direction == "und"
    body: dict[str, Any] = {
        "id": route.rubric_id,
        "version": 1,
        "applies_to": {
            "categories": [route.category],
            "subcategories": list(route.subcategories),
            "direction": route.direction,
        },
        "fallback_for": list(route.fallback_for),
        "images": images,
        "requires": requires,
        "variables": variables,
        "rendering": "authors",
        "parsing": "authors",
        "request": TEXT_REQUEST if text_call else IMAGE_REQUEST,
        "system": data.get("system_prompt", "") or "",
        "template": data.get("template", "") or "",
    }
    if text_call:
        body["follow_up"] = FOLLOW_UP
    if route.text_gate:
        body["text_gate"] = "balance"
    return body


def import_authors(repo: str | Path, out: str | Path) -> ImportReport:
    """Convert the authors' template files of a checkout into a rubric directory of ours.

    Args:
        repo: The user's checkout of the authors' repository.
        out: The rubric directory to write (new, empty, or an earlier import, which is replaced).

    Raises:
        GapevalError: ``repo`` is not their checkout, a template file is unreadable or asks for a
            variable their script does not pass, their script routes to templates this importer does
            not know, or ``out`` holds files of its own.

    """
    repo, out = Path(repo), Path(out)
    folder = repo / TEMPLATE_DIR
    if not repo.is_dir():
        raise GapevalError("no such directory (the authors' repository checkout)", file=repo)
    if not folder.is_dir():
        raise GapevalError(
            "is not a checkout of the authors' repository (no utils/prompt_templates/)",
            file=repo,
            field="utils/prompt_templates",
        )
    known = {r.template for r in ROUTES}
    if (repo / SCRIPT).is_file():
        theirs = _their_yaml_names(repo / SCRIPT)
        unknown = sorted(theirs - known)
        if unknown:
            raise GapevalError(
                f"routes to templates this importer does not know ({', '.join(unknown)}): their judging "
                "has changed since gapeval read it; nothing was written",
                file=repo / SCRIPT,
                field="PROMPT_MAP",
            )
    if out.exists() and not out.is_dir():
        raise GapevalError("exists and is not a directory", file=out)
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise GapevalError(
            "holds files and is not an earlier import; choose a new directory (nothing was written)",
            file=out,
        )
    report = ImportReport(out=out, commit=_commit(repo))
    staged: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for route in ROUTES:
        path = folder / route.template
        if not path.is_file():
            if route.template not in report.missing:
                report.missing.append(route.template)
            continue
        data = _read_template(path)
        hashes[route.template] = hashlib.sha256(path.read_bytes()).hexdigest()
        body = _rubric(route, data)
        name = f"{route.rubric_id}.yaml"
        text = yaml.dump(body, Dumper=_Block, sort_keys=False, allow_unicode=True, width=100)
        try:
            load_rubric(str(path), text)  # every file we write loads, or nothing is written
        except GapevalError as exc:
            raise GapevalError(
                f"{exc.message} (their script passes only these)", file=path, field="template"
            ) from exc
        staged[name] = text
        report.written[route.template] = name
    if not staged:
        raise GapevalError("holds none of the templates their script routes to", file=folder)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("authors-*.yaml"):
        old.unlink()
    for name, text in staged.items():
        (out / name).write_text(text, encoding="utf-8")
    manifest = {
        "source": str(repo.resolve()),
        "commit": report.commit,
        "templates": hashes,
        "missing": report.missing,
        "note": "Converted by gapeval rubrics import-authors; the text is the authors', from this checkout.",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return report


# -- at judging time ---------------------------------------------------------------------------------
_SUFFIXES = (".png", ".jpg", ".jpeg")


def _first_in(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)
    return found[0] if found else None


def item_folder(item: Item, suite_root: str) -> Path | None:
    """The item's own folder in the authors' layout (it holds ``prompt.json``), or None."""
    if not suite_root or not item.source:
        return None
    folder = Path(suite_root) / item.source
    return folder if (folder / "prompt.json").is_file() else None


def find_slot(slot: ImageSlot, item: Item, folder: Path | None, own: dict[str, str | None]) -> str | None:
    """The file a slot attaches, found as the other harness finds it; None when there is none.

    Args:
        slot: The slot.
        item: The item.
        folder: The item's source folder (None: the item has none, ``otherwise`` applies).
        own: The item's own images and the output (``question``, ``reference``, ``output``).

    """
    if folder is None:
        return own.get(slot.otherwise) if slot.otherwise else None
    root = folder.resolve()
    for lookup in slot.lookup:
        kind, _, arg = lookup.partition(":")
        found: Path | None = None
        if kind == "folder":
            found = _first_in(folder / arg)
        elif kind == "record":
            value = item.raw.get(arg)
            if isinstance(value, str) and value and "\0" not in value:
                path = Path(value) if Path(value).is_absolute() else folder / value
                found = path if path.is_file() else None
        elif own.get(lookup):
            return own[lookup]
        # A dataset's file may not lead the judge outside its own folder (a link or ../ would send
        # any file on this machine to the endpoint).
        if found is not None and found.resolve().is_relative_to(root.parent):
            return str(found)
    return None


def record_fields(item: Item) -> dict[str, str]:
    """``reference_text`` and ``problem_text`` as their script reads them from ``prompt.json``.

    Items from other suites (no source record) give their own reference and understanding prompt.
    """
    raw = item.raw
    if not raw or "category" not in raw:
        return {"reference_text": item.refs.text or "", "problem_text": item.und.prompt}
    ref = raw.get("reference")
    text = "\n".join(str(v) for v in ref) if isinstance(ref, list) else "" if ref is None else str(ref)
    problem = raw.get("und_prompt") or raw.get("problem")
    return {"reference_text": text, "problem_text": problem if isinstance(problem, str) else ""}
