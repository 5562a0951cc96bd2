"""The HTML and Markdown reports of real runs, the HTML opened in headless Chromium (selenium + chromedriver)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import ROOT, run_workbench
from workbench.probes.allocator import jemalloc_size_classes
from workbench.report.html import render_html
from workbench.report.markdown import render_markdown
from workbench.report.model import Report, RunError, report_from_dict
from workbench.report.timeline import read_samples

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOSTILE = "<script>window.pwned=1</script>"
LABELS = ["baseline", "allocated", "filled", "held", "vector-closed", "allocator-closed"]
# process, allocator, Arrow, NMT: the groups of the timeline that every arrow-intvector run samples.
CHART_COUNT = 4

webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


@dataclass(frozen=True)
class RenderedRun:
    report: Report
    run_dir: Path
    page: Path


def _run_and_render(work: Path, scenario: str, *extra: str) -> RenderedRun:
    run_dir = work / "run"
    result = run_workbench("run", scenario, "--hold", "1s", "--out", str(run_dir), *extra, cwd=work)
    assert result.returncode == 0, result.stderr
    report = report_from_dict(json.loads((run_dir / "report.json").read_text()))
    page = work / "report.html"
    page.write_text(render_html(report, run_dir), encoding="utf-8")
    return RenderedRun(report, run_dir, page)


@pytest.fixture(scope="module")
def jemalloc_run(tmp_path_factory: pytest.TempPathFactory) -> RenderedRun:
    return _run_and_render(tmp_path_factory.mktemp("html-jemalloc"), "arrow-intvector", "--allocator", "jemalloc")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> RenderedRun:
    """arrow-intvector under glibc, renamed, with markup in its description."""
    work = tmp_path_factory.mktemp("html-hostile")
    scenario_data = yaml.safe_load((ROOT / "scenarios" / "arrow-intvector.yaml").read_text())
    scenario_data.update(name="hostile-intvector", description=f"Escaping: {HOSTILE} & <b>bold</b>",
                         allocator="glibc")
    scenario = work / "hostile.yaml"
    scenario.write_text(yaml.safe_dump(scenario_data, sort_keys=False))
    return _run_and_render(work, str(scenario))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    # The DevTools network events of each page load, to prove that nothing is fetched.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit chromedriver: selenium's own driver manager would otherwise go online to find one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser: Any, page: Path) -> list[str]:
    """Load the page; the URLs it requested, from the DevTools log."""
    browser.get_log("performance")  # drop what earlier pages logged
    browser.get(page.as_uri())
    requested = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    return requested


def _charts(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, "figure.chart"))


# For every uPlot the page drew: each series' values that are not null, how many of their points show the series'
# own colour, opaque, on the canvas within a pixel of the point's position (read back from the canvas's pixels: a
# point on the plot's edge is half-covered at its exact pixel), and how many are under a series drawn after it in the
# same plot, at the same place (jemalloc's active and allocated are often equal: the later line covers the earlier
# one there, which a CI run measured at 3 of 13 points of 'active'). And per snapshot, the share of the plot's height
# at the snapshot's x that shows the dashed line's grey.
_DRAWN_POINTS = """
const hex = c => [1, 3, 5].map(i => parseInt(c.slice(i, i + 2), 16));
const near = (pixels, rgb) => {
  for (let p = 0; p < pixels.length; p += 4)
    if (rgb.every((c, j) => Math.abs(c - pixels[p + j]) < 40) && pixels[p + 3] > 200) return true;
  return false;
};
return window.workbenchCharts.map(chart => chart.plots.map(u => ({
  series: u.series.slice(1).map((series, k) => {
    const s = k + 1, stroke = hex(typeof series.stroke === "function" ? series.stroke(u, s) : series.stroke);
    let values = 0, coloured = 0, covered = 0;
    u.data[s].forEach((y, i) => {
      if (y === null || y === undefined) return;
      values++;
      const x = Math.round(u.valToPos(u.data[0][i], "x", true)), py = Math.round(u.valToPos(y, series.scale, true));
      if (near(u.ctx.getImageData(x - 1, py - 1, 3, 3).data, stroke)) coloured++;
      else if (u.series.some((later, t) => t > s && later.show !== false && u.data[t][i] !== null &&
               u.data[t][i] !== undefined && Math.abs(u.valToPos(u.data[t][i], later.scale, true) - py) <= 2)) covered++;
    });
    return {label: series.label, values: values, coloured: coloured, covered: covered};
  }),
  snapshot_lines: arguments[0].map(seconds => {
    const x = Math.round(u.valToPos(seconds, "x", true)), top = Math.round(u.bbox.top), height = Math.round(u.bbox.height);
    const column = u.ctx.getImageData(x, top, 1, height).data;
    let grey = 0;
    for (let p = 0; p < column.length; p += 4) if (near(column.slice(p, p + 4), [0x99, 0x99, 0x99])) grey++;
    return grey / height;
  }),
})));
"""


def test_html_page_draws_one_chart_per_layer_group_with_every_sample_and_snapshot(
    browser: Any, jemalloc_run: RenderedRun
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, jemalloc_run.page)
    assert [s.label for s in jemalloc_run.report.snapshots] == LABELS
    figures = _charts(browser)
    assert [figure.get_attribute("data-layer") for figure in figures] == ["process", "allocator", "Arrow", "NMT"]
    for figure in figures:
        canvases = figure.find_elements(By.TAG_NAME, "canvas")
        assert canvases
        for canvas in canvases:
            box = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];",
                                         canvas)
            assert box[0] > 300 and box[1] > 150, box
        labels = [span.text for span in figure.find_elements(By.CSS_SELECTOR, ".snapshot-labels span")]
        assert labels == LABELS
    drawn = browser.execute_script(_DRAWN_POINTS, [s.t_ms / 1000 for s in jemalloc_run.report.snapshots])
    assert len(drawn) == CHART_COUNT
    samples = read_samples(jemalloc_run.run_dir / "samples.jsonl")
    process_rss = drawn[0][0]["series"][0]
    # The RSS line has a point for every sample of the run (the sampler reads it every time)...
    assert process_rss["label"] == "RSS" and process_rss["values"] == len(samples) > 10
    for chart in drawn:
        for panel in chart:
            # A dashed line at every snapshot, on every panel: 4 px drawn, 3 px not, under the series.
            assert all(0.3 < share < 0.7 for share in panel["snapshot_lines"]), panel["snapshot_lines"]
            for series in panel["series"]:
                # ...and every line is on the canvas, in its colour, at (nearly) all of its points that no later
                # line covers (the last line of a plot: at all of them), and seen somewhere unless covered everywhere.
                assert series["values"] > 0 and series["coloured"] + series["covered"] >= 0.8 * series["values"], \
                    series
                assert series["coloured"] > 0 or series["covered"] == series["values"], series
    # The page fills a screen and more: a visible report, not an error page.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    assert height > 3000
    browser.set_window_size(1280, height)
    browser.save_screenshot("/tmp/report.png")
    browser.set_window_size(1280, 1000)


def test_html_ledger_of_allocated_shows_arrow_accounting_in_exact_bytes(
    browser: Any, jemalloc_run: RenderedRun
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, jemalloc_run.page)
    ledgers = browser.find_elements(By.CSS_SELECTOR, "table.ledger:not(.owners)")
    assert [t.get_attribute("data-snapshot") for t in ledgers] == LABELS
    owners = browser.find_elements(By.CSS_SELECTOR, "table.ledger.owners")  # the ledger by address, per snapshot
    assert [t.get_attribute("data-snapshot") for t in owners] == LABELS
    allocated = ledgers[LABELS.index("allocated")]
    rows = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")
        for row in allocated.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    arrow = rows["Arrow: accounted"]
    assert arrow[1].text == "+512.0 KiB"
    assert arrow[1].get_attribute("title") == "+524,288 B"
    assert {"JVM mappings (NMT committed − malloc)", "unexplained", "process: anonymous RSS"} <= set(rows)
    reconciliation = jemalloc_run.report.snapshot("allocated").reconciliation
    assert reconciliation is not None and reconciliation.unexplained_bytes is not None
    assert rows["unexplained"][1].get_attribute("title") == f"{reconciliation.unexplained_bytes:+,} B"


def test_html_shows_largest_mappings_and_jemalloc_size_classes_of_the_last_snapshot(
    browser: Any, jemalloc_run: RenderedRun
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, jemalloc_run.page)
    last = jemalloc_run.report.snapshots[-1]
    assert last.process is not None
    mapping_rows = browser.find_elements(By.CSS_SELECTOR, "table.mappings tbody tr")
    assert len(mapping_rows) == len(last.process.largest_anon_mappings) > 0
    first = last.process.largest_anon_mappings[0]
    cells = mapping_rows[0].find_elements(By.TAG_NAME, "td")
    assert cells[0].text == f"{first.start:#x}-{first.end:#x}"
    assert cells[3].get_attribute("title") == f"{first.size_bytes:,} B"
    size_rows = browser.find_elements(By.CSS_SELECTOR, "table.size-classes tbody tr")
    assert len(size_rows) == 15
    live_bytes = [int(row.find_elements(By.TAG_NAME, "td")[3].get_attribute("title").removesuffix(" B")
                      .replace(",", "")) for row in size_rows]
    assert live_bytes == sorted(live_bytes, reverse=True) and live_bytes[-1] > 0
    # The report holds every live size class, read by the worker's snapshot reader through mallctl; the statistics
    # kept on disk are jemalloc's own dump, printed a moment later (a new stats epoch, while the JVM's threads run):
    # the two agree class by class except for the few classes that changed in between, which shows the keys are read
    # right (measured: 1-2 of ~60 classes differ, by one or two extents).
    stats_text = (jemalloc_run.run_dir / "allocator" / f"{last.label}.json").read_text()
    dumped = jemalloc_size_classes(stats_text)
    assert last.size_classes is not None and dumped is not None
    ours = {(c.kind, c.size_bytes): c for c in last.size_classes}
    theirs = {(c.kind, c.size_bytes): c for c in dumped}
    differing = [key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)]
    assert len(differing) <= 4, differing
    assert [c.bytes for c in last.size_classes[:15]] == live_bytes
    allocated = json.loads(stats_text)["jemalloc"]["stats"]["allocated"]
    assert abs(sum(c.bytes for c in last.size_classes) - allocated) <= 512 * 1024 and allocated > sum(live_bytes)
    assert all(s.size_classes for s in jemalloc_run.report.snapshots)


def test_html_escapes_the_scenario_and_fetches_nothing(browser: Any, hostile_run: RenderedRun) -> None:
    from selenium.webdriver.common.by import By

    requested = _open(browser, hostile_run.page)
    assert requested == [hostile_run.page.as_uri()]
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"Escaping: {HOSTILE} & <b>bold</b>" in body
    # The only scripts: the timeline's data (JSON, not run), the vendored uPlot and the page's chart script, all
    # inline; the CSP allows exactly those two scripts by their hashes.
    scripts = browser.execute_script(
        "return Array.from(document.scripts).map(s => [s.getAttribute('type'), s.getAttribute('src'), s.text])")
    assert [(kind, src) for kind, src, _ in scripts] == [("application/json", None), (None, None), (None, None)]
    assert "(v1.6.32)" in scripts[1][2][:80]
    csp = browser.find_element(By.CSS_SELECTOR, 'meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
    assert "default-src 'none'" in csp and csp.count("'sha256-") == 2
    assert browser.find_elements(By.TAG_NAME, "link") == []
    assert browser.find_elements(By.CSS_SELECTOR, "b") == []
    for attribute in ("src", "href", "xlink:href"):
        values = browser.execute_script(
            f"return Array.from(document.querySelectorAll('*')).map(e => e.getAttribute('{attribute}'))"
            ".filter(v => v !== null);")
        assert not [v for v in values if re.match(r"\s*(https?:)?//", v)], values
    html = hostile_run.page.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html)
    assert "@import" not in html and "url(http" not in html
    # The run under glibc: its allocator statistics are malloc_info XML, which has no size classes.
    assert hostile_run.report.snapshots[-1].size_classes is None
    assert "Size classes are available for jemalloc only (this run's allocator: glibc)." in body
    # glibc gives allocated and mapped, so its allocator chart is there too.
    assert len(_charts(browser)) == CHART_COUNT == len(browser.execute_script("return window.workbenchCharts"))


def test_markdown_has_the_table_findings_and_every_ledger(jemalloc_run: RenderedRun) -> None:
    markdown = render_markdown(jemalloc_run.report)
    assert "| Arrow | allocated (accounted) |" in markdown
    for label in LABELS:
        assert f"### Ledger: {label}" in markdown
    ledger = markdown.split("### Ledger: allocated", 1)[1].split("### Ledger:", 1)[0]
    assert re.search(r"^\| Arrow: accounted \| \+512\.0 KiB \(\+524,288 B\) \|", ledger, re.MULTILINE), ledger
    assert "Arrow accounts 524,288 B at 'allocated'" in markdown
    last = jemalloc_run.report.snapshots[-1]
    assert last.size_classes is not None
    biggest = last.size_classes[0]
    assert f"## Size classes at '{last.label}'" in markdown
    assert re.search(rf"^\| {biggest.kind} \| .*\| {biggest.count:,} \| .*\({biggest.bytes:,} B\) \|$", markdown,
                     re.MULTILINE), markdown
    # Every row of every table has as many unescaped '|' as its header: no cell broke its row.
    tables = re.findall(r"(?m)(?:^\|.*\n)+", markdown)
    assert len(tables) == 1 + 2 * len(LABELS) + 1  # layers, a ledger and its owners per snapshot, size classes
    for table in tables:
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(widths) == 1, table


def test_html_without_run_dir_says_what_is_missing(jemalloc_run: RenderedRun, tmp_path: Path) -> None:
    page = render_html(jemalloc_run.report, None)
    assert 'class="chart"' not in page and "<script" not in page
    assert "No run directory: the timeline is not available." in page
    # The size classes are in the report itself: they need no run directory.
    assert page.count('<tr><td>large</td>') + page.count('<tr><td>small</td>') == 15
    partial = tmp_path / "partial"
    shutil.copytree(jemalloc_run.run_dir, partial)
    (partial / "samples.jsonl").unlink()
    shutil.rmtree(partial / "allocator")
    page = render_html(jemalloc_run.report, partial)
    assert "has no samples.jsonl" in page and 'class="size-classes"' in page


def test_html_of_a_failed_run_shows_its_error_as_text(jemalloc_run: RenderedRun) -> None:
    failed = replace(jemalloc_run.report, status="failed",
                     error=RunError(type="ScenarioError", message=f"step said {HOSTILE}", step=3))
    page = render_html(failed, jemalloc_run.run_dir)
    assert '<span class="status failed">failed</span>' in page
    assert "<strong>ScenarioError</strong> at step 3" in page
    assert "step said &lt;script&gt;window.pwned=1&lt;/script&gt;" in page and HOSTILE not in page
    assert "error: ScenarioError: step said &lt;script>" in render_markdown(failed)
