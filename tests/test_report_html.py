"""The HTML report, opened from disk in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import csv
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from gapeval import api
from gapeval.items import Direction
from gapeval.store import RunStore

PLANTED = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What a browser must not do on its own on a closed network (and what makes it quiet).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run of the built-in model whose every 7th answer carries a planted script, and its report."""
    root = tmp_path_factory.mktemp("report")
    adapter = root / "planted.py"
    adapter.write_text(
        textwrap.dedent(f"""
        from gapeval.models.base import TextOutput
        from gapeval.models.toy import ToyModel

        class Planted(ToyModel):
            def understand(self, requests):
                outs = super().understand(requests)
                bad = {PLANTED!r}
                return [TextOutput(text=bad + o.text) if i % 7 == 0 else o for i, o in enumerate(outs)]
        """)
    )
    run = root / "run"
    api.run("shapes-v1-mini", f"py:{adapter}:Planted", out=run, samples_gen=1)
    site = api.report_site([run], fragility_n=0, n_boot=20)
    return run, site.index


def expected_und_only(run: Path) -> set[str]:
    """Items the store says were understood but not drawn (decided both ways)."""
    from gapeval.scoring.joint import item_scores

    with RunStore.open(run) as store:
        records = store.records()
    scores = item_scores(records, records.manifest.judge_chain)
    return {
        item
        for (item, d), u in scores.items()
        if d is Direction.UND and u >= 0.5 and scores.get((item, Direction.GEN), 1.0) < 0.5
    }


def test_the_report_folder_holds_tables_figures_and_a_summary(report) -> None:
    _, index = report
    site = index.parent
    for name in ("accuracy_by_category", "joint_outcomes", "abilities", "gap_heatmap"):
        assert (site / "figures" / f"{name}.svg").stat().st_size > 1000
        with Image.open(site / "figures" / f"{name}.png") as img:
            assert img.size[0] > 300
    rows = list(csv.DictReader((site / "tables" / "leaderboard.csv").open()))
    assert {r["category"] for r in rows} >= {"Overall", "Reasoning"}
    assert "| model |" in (site / "summary.md").read_text()
    html = index.read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch from elsewhere
    assert PLANTED not in (site / "data.js").read_text()  # JSON-escaped, never raw markup


@pytest.fixture(scope="module")
def browser():
    required = os.environ.get("GAPEVAL_REQUIRE_BROWSER") == "1"
    if required:
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_the_report_works_from_disk_in_a_browser(report, browser, tmp_path) -> None:
    run, index = report
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(index.as_uri())
    page.wait_for_function("window.gapevalReady === true")

    # The leaderboard sorts: Und, once descending after two clicks.
    titles = page.eval_on_selector_all("#t-leaderboard thead th", "ths => ths.map(th => th.textContent)")
    und = titles.index("Und")
    header = page.locator("#t-leaderboard thead th").nth(und)
    header.click()
    header.click()
    values = page.eval_on_selector_all(
        "#t-leaderboard tbody tr",
        f"rows => rows.map(r => r.cells[{und}].getAttribute('data-v')).filter(v => v !== '')",
    )
    assert [float(v) for v in values] == sorted((float(v) for v in values), reverse=True) and len(values) > 2

    # "understood but failed to draw" shows exactly the items the store says.
    page.select_option("#f-outcome", "und_only")
    while page.is_visible("#more"):
        page.click("#more")
    shown = set(page.eval_on_selector_all("#list article", "cards => cards.map(c => c.dataset.item)"))
    assert shown == expected_und_only(run) and shown

    # Images load (thumbnails in view), and the full image opens on click.
    page.select_option("#f-outcome", "")
    first = page.locator("#list article").first
    first.scroll_into_view_if_needed()
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#list article:first-child img.thumb'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert (
        first.locator("img.thumb[title^='generated']").count() == 1
    )  # the model's image, beside the question
    first.locator("img.thumb").first.click()
    page.wait_for_function("document.getElementById('lightbox-img').naturalWidth > 0")
    page.click("#lightbox-close")

    # The planted markup is text: no script ran, no element was made from it.
    page.fill("#f-text", "")
    assert page.evaluate("window.__pwned") is None
    planted = page.locator(".answer", has_text="<script>window.__pwned = 1</script>")
    assert planted.count() > 0
    assert page.locator("#list img[src='x']").count() == 0

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 100  # text, tables and images, not a blank page
    assert outside == [] and errors == []

    page.goto((index.parent / "provenance.html").as_uri())
    assert page.locator("h2").count() == 1 and "suite" in page.content()
    assert outside == []
    page.close()


def test_people_label_in_the_report_and_the_audit_reads_their_export(browser, tmp_path) -> None:
    """Label with the keyboard, reload (progress kept), export, then audit the judge on the file."""
    run = tmp_path / "run"
    api.run("shapes-v1-mini", "toy", out=run, samples_gen=1)
    api.judge(run, ["noisy:und=0.9/0.1,gen=0.7/0.2,seed=3"])
    sample = api.label_sample(run, 12, judge="noisy", seed=1)
    assert len(sample.plan.sample) == 12 and sum(s.drawn for s in sample.plan.strata) == 12
    with RunStore.open(run) as store:
        verdicts = {(v.item_id, str(v.direction), v.sample, v.judge_id.split(":")[0]): v.passed
                    for v in store.verdicts()}  # fmt: skip
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(sample.index.as_uri())
    page.wait_for_function("window.gapevalReady === true")
    # the sample report opens in labelling mode, on just the drawn outputs, the judges' verdicts hidden
    assert page.text_content("#label-count") == "0 of 12 labelled"
    assert not page.is_visible("details.verdict")
    shown = page.eval_on_selector_all("[data-out]", "ns => ns.map(n => n.dataset.out.split('\\u0001'))")
    assert sorted((i, d, int(k)) for _, i, d, k in shown) == sorted(sample.plan.sample)

    def truth_of_current() -> tuple[tuple[str, str, int], bool]:
        _, item, direction, k = page.get_attribute(".current", "data-out").split("\u0001")
        return (item, direction, int(k)), verdicts[(item, direction, int(k), "scene")]

    # a person labels the first six as the exact judge would (p pass / f fail), then closes the page
    labelled = {}
    for _ in range(6):
        key, right = truth_of_current()
        page.keyboard.press("p" if right else "f")
        labelled[key] = right
    page.reload()
    page.wait_for_function("window.gapevalReady === true")
    assert page.text_content("#label-count") == "6 of 12 labelled"
    assert page.locator(".labeller button.on").count() == 6
    # the rest: one skipped, one moved past with n and back with b, the others labelled
    for _ in range(6):
        page.keyboard.press("n")
    key, _ = truth_of_current()
    page.keyboard.press("s")
    page.keyboard.press("b")
    assert truth_of_current()[0] == key
    page.keyboard.press("n")
    for _ in range(5):
        key, right = truth_of_current()
        page.keyboard.press("p" if right else "f")
        labelled[key] = right
    assert page.text_content("#label-count") == "11 of 12 labelled, 1 skipped"
    with page.expect_download() as download:
        page.click("#label-export")
    labels = tmp_path / "labels.csv"
    download.value.save_as(labels)
    assert errors == []
    rows = list(csv.DictReader(labels.open()))
    assert {(r["item_id"], r["direction"], int(r["sample"])): r["label"] == "pass" for r in rows} == labelled
    # the audit of the noisy judge against these labels counts exactly the labelled outputs
    res = api.audit(run, judge="noisy", truth=str(labels))
    overall = {r.direction: r for r in res.audit.rows if r.category == "Overall"}
    observed = {k: verdicts[(*k, "noisy")] for k in labelled}
    for direction in ("und", "gen"):
        keys = [k for k in labelled if k[1] == direction]
        tp = sum(labelled[k] and observed[k] for k in keys)
        assert (overall[direction].n, overall[direction].tp) == (len(keys), tp)
