"""The viewer in headless Chromium (software WebGL): rendering, hover, colour-by, search, neighbours, XSS.

Needs the Debian package ``chromium`` (see the README's test command) and the
``playwright`` Python package; no browser is downloaded. Screenshots go to
tests/artifacts/viewer/.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from test_viewer import XSS, read_data, write_duplicates_run, write_run_folder
from tsne_dist.viz.export import export_viewer
from tsne_dist.viz.server import make_server, server_url

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"]
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts", "viewer")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A 300-item run with a second run to compare, exported and served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("viewer")
    run = write_run_folder(root / "maps", n=300, seed=0)
    write_run_folder(root / "other", n=300, seed=1)
    result = export_viewer(str(root / "maps"), compare=str(root / "other"))
    server = make_server(str(root / "maps"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    positions = np.frombuffer(read_data(result.path, result.manifest["layouts"][0]["file"]), dtype="<f4")
    yield {"url": server_url(server), "run": run, "manifest": result.manifest, "xy": positions.reshape(-1, 2)}
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium (see the README's test command)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site):
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(site["url"])
    page.wait_for_function("window.__viewer.loaded || window.__viewer.error !== null", timeout=30_000)
    assert page.evaluate("window.__viewer.error") is None
    yield page
    assert page.errors == []
    page.close()


def next_frame(page) -> None:
    """Wait until the scatterplot has rendered a frame after everything asked so far."""
    page.evaluate("""() => new Promise((resolve) => {
        const sp = window.__viewer.scatterplot;
        const token = sp.subscribe('draw', () => { sp.unsubscribe(token); resolve(); });
        sp.redraw();
    })""")


def canvas_pixels(page, name: str) -> np.ndarray:
    """The map canvas as an RGB array, also saved to tests/artifacts/viewer/NAME.png."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    png = page.locator("#map").screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def overlay_counts(page) -> dict:
    """Pixels drawn on the 2-D overlay canvas (neighbour lines, outlier rings): all, and red ones."""
    return page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let drawn = 0, red = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (data[i + 3] > 0) {
                drawn += 1;
                if (data[i] > 150 && data[i + 1] < 120) red += 1;
            }
        }
        return { drawn, red };
    }""")


def changed(before: np.ndarray, after: np.ndarray) -> int:
    return int((np.abs(before - after).sum(axis=2) > 60).sum())


def hover(page, index: int) -> None:
    x, y = page.evaluate(f"window.__viewer.screenPosition({index})")
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=3)
    page.wait_for_function(f"window.__viewer.hovered === {index}", timeout=5_000)


def test_page_loads_and_draws_points(page, site):
    pixels = canvas_pixels(page, "loaded")
    coloured = (np.abs(pixels - 255).sum(axis=2) > 60).sum()
    assert coloured > 1000  # 300 points of ~6 px
    assert page.inner_text("#summary").startswith("300 items")
    legend = page.locator(".legend-item").all_inner_texts()
    assert len(legend) == 6 and all(text.split()[-1] == "50" for text in legend)
    timings = page.evaluate("window.__viewer.timings")
    assert 0 < timings["firstFrame"] <= timings["loaded"]


def test_hover_shows_item_metadata(page, site):
    table = site["run"]["table"]
    hover(page, 42)
    assert page.is_visible("#tooltip")
    lines = page.inner_text("#tooltip").splitlines()
    assert lines[0] == "item-42"
    assert f"category: {table['category'][42]}" in lines
    assert f"score: {table['score'][42]:.3f}" in lines
    assert "title: Title 42 <b>bold</b>" in lines
    canvas_pixels(page, "hover")


def test_colour_by_switch_changes_pixels(page):
    before = canvas_pixels(page, "colour-category")
    page.select_option("#color-by", "score")
    page.wait_for_function("window.__viewer.colorBy === 'score'")
    next_frame(page)
    after = canvas_pixels(page, "colour-score")
    assert changed(before, after) > 500
    assert page.locator(".colorbar").count() == 1
    page.select_option("#color-by", "category")
    page.wait_for_function("window.__viewer.colorBy === 'category'")
    page.locator(".legend-item").first.click()  # isolate one category
    page.wait_for_function("window.__viewer.isolated && window.__viewer.isolated.count === 50")
    next_frame(page)
    isolated = canvas_pixels(page, "colour-isolated")
    assert changed(before, isolated) > 500


def test_search_flies_to_item(page, site):
    page.fill("#search", "item-42")
    page.press("#search", "Enter")
    page.wait_for_function("window.__viewer.lastSearch && window.__viewer.lastSearch.query === 'item-42'")
    assert page.evaluate("window.__viewer.lastSearch.matches[0]") == 42  # exact id first
    assert page.locator("#search-results li").first.inner_text() == "item-42"
    page.wait_for_function("window.__viewer.scatterplot.get('camera').distance[0] < 0.5", timeout=5_000)
    assert page.evaluate("window.__viewer.selection.index") == 42
    # by a text column
    page.fill("#search", "title 123 ")
    page.click("#search-button")
    page.wait_for_function("window.__viewer.lastSearch.query === 'title 123'")
    assert page.evaluate("window.__viewer.lastSearch.matches") == [123]
    page.fill("#search", "no such thing")
    page.click("#search-button")
    page.wait_for_function("window.__viewer.lastSearch.query === 'no such thing'")
    assert page.inner_text("#search-status") == 'no item matches "no such thing"'
    canvas_pixels(page, "search")


def test_click_lists_neighbours_and_counts_those_kept(page, site):
    index = 100
    hover(page, index)  # as a user does: the scatterplot picks the point under its last known pointer
    x, y = page.evaluate(f"window.__viewer.screenPosition({index})")
    page.mouse.click(x, y)
    page.wait_for_function(f"window.__viewer.selection && window.__viewer.selection.index === {index}")
    expected = site["run"]["indices"][index, :15]
    items = page.locator("#neighbours-list li .name").all_inner_texts()
    assert items == [site["run"]["table"]["id"][j] for j in expected]
    xy = site["xy"].astype(np.float64)
    d2 = ((xy - xy[index]) ** 2).sum(axis=1)
    d2[index] = np.inf
    on_map = set(np.argsort(d2, kind="stable")[:15])
    kept = len(on_map & set(expected))
    assert kept == 10  # by construction of the fixture: 10 near, 5 from the opposite cluster
    assert page.inner_text("#neighbours-summary").endswith(
        f"{kept} of its 15 nearest high-D neighbours are also among its 15 nearest on the map.")
    assert page.locator("#neighbours-list li.kept").count() == kept
    assert overlay_counts(page)["drawn"] > 200  # the neighbour lines are drawn
    canvas_pixels(page, "neighbours")


def test_untrusted_names_render_as_text(page, site):
    hover(page, 7)
    tooltip = page.inner_text("#tooltip")
    assert tooltip.splitlines()[0] == XSS
    assert page.locator("#tooltip img").count() == 0
    hover(page, 9)
    assert "title: <script>alert(2)</script>" in page.inner_text("#tooltip").splitlines()
    page.fill("#search", "<img")
    page.press("#search", "Enter")
    page.wait_for_function("window.__viewer.lastSearch && window.__viewer.lastSearch.query === '<img'")
    assert page.locator("#search-results li").first.inner_text() == XSS
    assert page.inner_text("#neighbours-summary").startswith(XSS)
    assert page.locator("#panel img, #map img").count() == 0
    page.wait_for_timeout(300)
    canvas_pixels(page, "untrusted")
    assert page.dialogs == []


def test_outlier_toggle_rings_top_scores(page, site):
    outlier = site["manifest"]["outlier"]
    assert outlier["n_top"] == 3
    assert overlay_counts(page)["drawn"] == 0
    page.check("#outliers")
    page.wait_for_function("window.__viewer.outliersShown === 3")
    assert overlay_counts(page)["red"] > 30
    assert "top 3 items by outlier score" in page.inner_text("#outlier-note")
    hover(page, 3)  # the planted outlier: 10x the usual neighbour distance
    assert "outlier score: " in page.inner_text("#tooltip")
    score = float(page.inner_text("#tooltip").split("outlier score: ")[1].split()[0])
    assert score > 5
    canvas_pixels(page, "outliers")


def test_compare_toggle_animates_to_second_layout(page, site):
    button = page.locator("#compare-toggle")
    assert button.is_visible() and button.inner_text() == "Animate to: other"
    before = canvas_pixels(page, "compare-first")
    button.click()
    page.wait_for_function("window.__viewer.layoutIndex === 1", timeout=10_000)
    next_frame(page)
    after = canvas_pixels(page, "compare-second")
    assert changed(before, after) > 500
    assert button.inner_text() == "Animate to: maps"
    # the hover index follows the new layout
    hover(page, 5)
    assert page.inner_text("#tooltip").splitlines()[0] == "item-5"


@contextlib.contextmanager
def served_page(browser, folder, wait_for: str):
    """A page of the viewer in ``folder``, served on 127.0.0.1, once ``window.__viewer.<wait_for>``."""
    server = make_server(str(folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page(viewport={"width": 800, "height": 600})
    try:
        page.goto(server_url(server))
        page.wait_for_function(f"window.__viewer.{wait_for} || window.__viewer.error !== null", timeout=30_000)
        assert page.evaluate("window.__viewer.error") is None
        yield page
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_the_kept_count_counts_tied_neighbours(tmp_path, browser):
    write_duplicates_run(tmp_path / "dups")  # 40 copies of one vector: any copy is a true neighbour
    other = pd.read_parquet(tmp_path / "dups" / "layout.parquet")
    other["x"], other["y"] = other["y"] * 2, -other["x"]  # a second layout to switch to
    (tmp_path / "other").mkdir()
    other.to_parquet(tmp_path / "other" / "layout.parquet", index=False)
    export_viewer(str(tmp_path / "dups"), compare=str(tmp_path / "other"))
    with served_page(browser, tmp_path / "dups", "loaded") as page:
        page.evaluate("window.__viewer.focusItem(0)")  # what clicking a search result does
        page.wait_for_function("window.__viewer.selection && window.__viewer.selection.index === 0")
        selection = page.evaluate("window.__viewer.selection")
        assert selection["keptTieAware"] == 15  # its 15 nearest on the map are copies, tied with its 15th
        assert selection["kept"] < 15  # the listed copies are other copies
        summary = page.inner_text("#neighbours-summary")
        assert f"{selection['kept']} of its 15 nearest high-D neighbours" in summary
        assert "(ties), 15 of its 15 nearest on the map are true neighbours." in summary
        page.locator("#compare-toggle").click()  # at once, during the zoom; the count is about the run's layout
        page.wait_for_function("window.__viewer.layoutIndex === 1", timeout=10_000)
        assert page.evaluate("window.__viewer.selection.keptTieAware") is None
        assert "(ties)" not in page.inner_text("#neighbours-summary")


def test_the_page_opens_coloured_by_the_runs_color_by(tmp_path, browser):
    write_run_folder(tmp_path / "run", n=120, seed=2)
    export_viewer(str(tmp_path / "run"), color_by="score")  # a run made with --color-by score
    with served_page(browser, tmp_path / "run", "ready") as page:
        assert page.evaluate("window.__viewer.colorBy") == "score"  # not the first category column
        assert page.eval_on_selector("#color-by", "element => element.value") == "score"
