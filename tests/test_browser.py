"""The studio in a real browser: Debian's chromium driven by playwright against ``streamlit run app.py``.

Visits every page, steps through a left, scores and downloads a submission, saves screenshots, and fails
on any exception shown on a page. Skipped only where chromium is absent and TLL_REQUIRE_BROWSER is unset
(CI sets it, and installs chromium).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit
from pathlib import Path

import pytest

from conftest import copy_warm_cache

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# hang guards, not timings: a cold studio embeds the demo with the default recipe's deep backbones, which takes
# minutes on a loaded 2-core machine (120 s was exceeded under load)
WAIT_S = 600
PAGES = {"": "Totally-Looks-Like matching studio", "ranked": "Ranked candidates", "failures": "Failures",
         "compare": "Compare methods", "why": "Why this match?", "embedding_map": "Embedding map",
         "search": "Search by example", "train": "Train a learned matcher", "submission": "Submission"}
NAV = ["Overview", "Ranked candidates", "Failures", "Compare", "Why", "Embedding map", "Search", "Train",
       "Submission"]  # app.py's
GALLERY_COLUMNS = ["R@1", "R@5", "R@10", "medR", "gMRR", "gallery"]  # the register's short headers
VIEWPORTS = [(1280, 800), (1600, 1000)]  # every header, label and thumbnail whole at both
STUDIO_PORTS: set[int] = set()  # every studio started here: the one host (127.0.0.1/localhost) a page may ask
OFFSITE: dict = {}  # page → the URLs it asked of any other host or port

if not Path(CHROMIUM).exists():
    if os.environ.get("TLL_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing but TLL_REQUIRE_BROWSER is set")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(tmp_path_factory: pytest.TempPathFactory, warm: Path | None = None, data: Path | None = None):
    """``streamlit run app.py`` on a free port with its own cache (a copy of ``warm`` if given), on ``data``
    (``$TLL_DATA``; the demo when None): (url, process) once it answers."""
    port = _free_port()
    cache = tmp_path_factory.mktemp("browser-cache") / "cache"
    if warm is not None:
        copy_warm_cache(warm, cache)
    env = dict(os.environ, TLL_CACHE_DIR=str(cache))
    env.pop("TLL_DATA", None)
    env.pop("TLL_IMPORTS", None)
    if data is not None:
        env["TLL_DATA"] = str(data)
    STUDIO_PORTS.add(port)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return url, proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, warm_recipe_master: Path):
    """The studio as started by a user on the demo, on a copy of the warm recipe cache (the default recipe's demo
    embeddings and trained matcher, made by the engine once per session): the pages, not the embedding, are
    the subject here. It still writes the demo and builds the recipe's backbones itself."""
    url, proc = start_studio(tmp_path_factory, warm=warm_recipe_master)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@contextlib.contextmanager
def browser_page():
    """A page of a fresh headless chromium, 1400 x 1000, downloads accepted."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        opened = context.new_page()
        asked = OFFSITE.setdefault(opened, [])
        opened.on("request", lambda request: asked.append(request.url) if offsite_url(request.url) else None)
        yield opened
        browser.close()


def offsite_url(url: str) -> bool:
    """Whether ``url`` leaves the studio's host: anything but a studio's own port on 127.0.0.1 / localhost
    (data: and blob: URLs stay in the page)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob"):
        return False
    return parts.hostname not in ("127.0.0.1", "localhost") or parts.port not in STUDIO_PORTS


def offsite(page) -> list[str]:
    """What ``page`` has asked of another host so far (a font, an icon, a script from a CDN: the studio
    must work offline and tell no one what it is used for)."""
    return OFFSITE.get(page, [])


@pytest.fixture(scope="module")
def page(studio: str):
    with browser_page() as opened:
        yield opened


def settle(page, timeout_s: float = WAIT_S) -> None:
    """Wait until the app stops running (no 'Running' status widget) and assert no exception is shown."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    page.wait_for_timeout(500)
    while time.monotonic() < deadline and page.locator("[data-testid='stStatusWidget']").count():
        page.wait_for_timeout(250)
    page.wait_for_timeout(300)
    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]
    assert "Traceback" not in page.inner_text("body")


def shots() -> Path:
    folder = Path(os.environ.get("TLL_SCREENSHOTS") or (ROOT / "cache" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _nav(page) -> list[str]:
    """The sidebar navigation's page titles (its icons' ligature names are lower case)."""
    text = page.locator("[data-testid='stSidebarNav']").inner_text()
    return [line for line in text.split("\n") if line[:1].isupper()]


def test_every_page_in_a_browser(studio: str, page) -> None:
    for path, title in PAGES.items():
        page.goto(f"{studio}/{path}")
        page.get_by_role("heading", name=title).wait_for(timeout=WAIT_S * 1000)
        settle(page)
        assert _nav(page) == NAV  # app.py's st.navigation, never Streamlit's automatic list of a pages/ folder
        assert page.locator("[data-testid='stSidebar']").get_by_text("Backbone").count()  # app.py drew the sidebar
        if not path:  # the leaderboard carries the full-gallery figures beside the tasks'
            page.get_by_role("heading", name="Cache").wait_for(timeout=WAIT_S * 1000)  # drawn after the leaderboard
            grid = page.locator("[data-testid='stDataFrame']").first
            grid.locator("th", has_text="R@1").first.wait_for(state="attached", timeout=60_000)  # grid mounted
            page.screenshot(path=str(shots() / "overview.png"), full_page=True)
            headers = grid.locator("th").all_text_contents()  # the columns in view (the table fits the window)
            assert "top2" in headers and all(c in headers for c in GALLERY_COLUMNS), headers
        page.screenshot(path=str(shots() / f"{path or 'overview'}.png"), full_page=True)
    assert offsite(page) == []  # every page, its icons and favicon, from the studio itself


def test_a_deep_link_on_a_fresh_studio_runs_app_py(page, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The first request a fresh server answers is a deep link: it still runs app.py (sidebar, page config,
    query params) and shows app.py's navigation, not an automatic one."""
    url, proc = start_studio(tmp_path_factory)
    try:
        page.goto(f"{url}/ranked?backbone=combined")
        page.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
        settle(page)
        assert _nav(page) == NAV
        assert page.locator("[data-testid='stSidebar']").get_by_text("Backbone").count()  # app.py drew the sidebar
        page.get_by_text("combined ·").first.wait_for(timeout=WAIT_S * 1000)  # the link's backbone is the selection
        page.screenshot(path=str(shots() / "deep-link-ranked.png"), full_page=True)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_train_draws_the_curve_and_use_this_model_changes_the_selection(studio: str, page) -> None:
    page.goto(f"{studio}/train?backbone=combined")
    page.get_by_role("heading", name="Train a learned matcher").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    epochs = page.get_by_label("epochs", exact=True)
    epochs.fill("3")
    epochs.press("Tab")
    page.get_by_role("button", name="Train").click()
    page.get_by_text("validation top-2").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    assert "epochs" not in page.url  # trained, not yet the selection
    assert page.locator(".js-plotly-plot .annotation-text", has_text="kept: epoch").count() >= 1  # the stop marked
    page.get_by_role("button", name="Use this model").click()
    page.get_by_text("This model is the selection on every page").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    assert "epochs" in page.url  # the trained matcher is the selection, in the link too
    assert "epochs=3" in page.locator("[data-testid='stSidebar']").inner_text()
    page.screenshot(path=str(shots() / "train-done.png"), full_page=True)


def test_a_box_selection_on_the_map_shows_the_selected_images(studio: str, page) -> None:
    """Issue 11's crash: a box selection ended in a TypeError (plotly sends numpy customdata as base64 blocks)."""
    page.goto(f"{studio}/embedding_map?backbone=combined&method=zero-shot&options=[]")
    page.get_by_role("heading", name="Embedding map").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    area = page.locator(".nsewdrag").first
    area.wait_for(timeout=WAIT_S * 1000)
    box = area.bounding_box()
    before = page.locator("[data-testid='stImage']").count()
    page.mouse.move(box["x"] + 2, box["y"] + 2)  # the whole plotting area: every point is selected
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=8)
    page.mouse.up()
    page.locator("[data-testid='stImage'], [data-testid='stException']").nth(before).wait_for(timeout=WAIT_S * 1000)
    settle(page)  # no exception shown
    assert page.locator("[data-testid='stImage']").count() > before
    assert page.get_by_text("its partner").count() >= 1  # a selected left or right with its true partner
    page.screenshot(path=str(shots() / "map-selection.png"), full_page=True)
    opener = page.get_by_role("button", name=re.compile(r"^open .+ in Ranked$")).first
    name = re.match(r"open (.+) in Ranked", opener.inner_text()).group(1)
    opener.click()  # one click opens that left in Ranked candidates, and the URL names it
    page.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    page.get_by_text(f"left {name}", exact=True).wait_for(timeout=WAIT_S * 1000)
    assert f"left={name}" in page.url
    page.goto(f"{studio}/ranked?backbone=combined&method=zero-shot&options=[]&left={name}")  # a ?left= link
    page.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    page.get_by_text(f"left {name}", exact=True).wait_for(timeout=WAIT_S * 1000)


def test_step_through_lefts(studio: str, page) -> None:
    page.goto(f"{studio}/ranked")
    page.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    first = page.locator("[data-testid='stImageCaption']").first.inner_text()
    page.get_by_role("button", name="next ▶").click()
    settle(page)
    page.wait_for_function("f => document.querySelector(\"[data-testid='stImageCaption']\").innerText !== f", arg=first, timeout=WAIT_S * 1000)
    assert page.locator("[data-testid='stImageCaption']").first.inner_text() != first
    page.wait_for_function("() => document.querySelectorAll('img').length >= 21", timeout=WAIT_S * 1000)  # left + 20
    assert page.locator("img").count() >= 21
    page.screenshot(path=str(shots() / "ranked-next.png"), full_page=True)


def _left_shown(page) -> str:
    return page.locator("[data-testid='stImageCaption']").first.inner_text()


def _press_and_wait(page, key: str, before: str) -> str:
    """Press ``key`` and wait until the left shown changes from ``before``: the left now shown."""
    page.keyboard.press(key)
    page.wait_for_function("b => document.querySelector(\"[data-testid='stImageCaption']\").innerText !== b",
                           arg=before, timeout=WAIT_S * 1000)
    settle(page)
    return _left_shown(page)


def test_ranked_shows_all_20_and_the_truth_and_answers_the_keyboard(studio: str, page) -> None:
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(f"{studio}/ranked?backbone=tiny-image&method=zero-shot&options=[]&rerank=none")  # a weak one: misses
    page.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    captions = page.get_by_role("button", name=re.compile(r"^#\d+ · "))
    assert captions.count() == 20
    assert all(captions.nth(k).bounding_box()["y"] + captions.nth(k).bounding_box()["height"] <= 1000
               for k in range(20))  # every candidate on screen at 1600 x 1000, no scrolling
    framed = page.locator("div[class*='st-key-truth_']")
    assert framed.count() == 1 and "TRUTH" in framed.inner_text()
    assert page.evaluate("e => getComputedStyle(e).outlineStyle", framed.element_handle()) == "solid"
    assert _left_shown(page).startswith("left ") and page.get_by_text(re.compile(r"^truth ")).count() >= 1
    page.screenshot(path=str(shots() / "ranked-truth.png"))
    first = _left_shown(page)
    second = _press_and_wait(page, "ArrowRight", first)
    assert _press_and_wait(page, "ArrowLeft", second) == first
    _press_and_wait(page, "f", first)
    assert "top-2 miss" in page.inner_text("body")  # the next failure: its truth is outside the top 2
    shown = _left_shown(page)
    for _ in range(5):  # a random left (five draws: the same left five times over has odds below 1e-6)
        page.keyboard.press("d")
        page.wait_for_timeout(1500)
        settle(page)
        if _left_shown(page) != shown:
            break
    assert _left_shown(page) != shown
    captions.nth(2).click()  # the third candidate, full size
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=WAIT_S * 1000)
    settle(page)
    assert "rank 3 of 20" in dialog.inner_text() and dialog.locator("img").count() == 2
    page.screenshot(path=str(shots() / "ranked-full-size.png"))
    dialog.get_by_role("button", name="Why this match?").click()  # a dialog's button reruns only the dialog:
    page.get_by_role("heading", name="Why this match?").wait_for(timeout=WAIT_S * 1000)  # the app must switch
    settle(page)
    assert "candidate=" in page.url


def test_score_and_download_a_submission(studio: str, page, tmp_path: Path) -> None:
    page.goto(f"{studio}/submission")
    page.get_by_role("heading", name="Submission").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    page.get_by_role("button", name="Score the test tasks").click()
    page.get_by_role("button", name="Download the CSV").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download the CSV").click()
    target = tmp_path / "submission.csv"
    info.value.save_as(target)
    lines = target.read_text().splitlines()
    assert lines[0] == "left," + ",".join(f"c{i}" for i in range(20)) and len(lines) == 41
    page.screenshot(path=str(shots() / "submission-done.png"), full_page=True)


@pytest.fixture(scope="module")
def beacon():
    """A local HTTP server that records every request: a name rendered as markdown would hit it."""
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hits
    server.shutdown()


def test_file_names_never_fetch_or_link_in_the_browser(studio: str, page, beacon,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    from urllib.parse import urlencode

    from test_studio_safety import injection_folder

    port, hits = beacon
    data = injection_folder(tmp_path_factory.mktemp("inject") / "data", port=port)
    # the studio opened on that folder by a link (the folder is part of the selection in the URL)
    query = "?" + urlencode({"data": str(data), "backbone": "colour-hist", "method": "zero-shot", "rerank": "none"})
    for path, title in (("failures", "Failures"), ("ranked", "Ranked candidates")):
        page.goto(f"{studio}/{path}{query}")
        page.get_by_role("heading", name=title).wait_for(timeout=WAIT_S * 1000)
        settle(page)
        page.wait_for_timeout(1000)
        body = page.inner_text("body")
        assert "![p" in body or "[x" in body, body[:1500]  # the names are there, as text
        assert page.locator(f"a[href*='127.0.0.1:{port}'], img[src*='127.0.0.1:{port}']").count() == 0
        assert page.locator("strong").filter(has_text=re.compile(r"^E\d+$")).count() == 0  # **E0** not bold
    page.screenshot(path=str(shots() / "names-as-text.png"), full_page=True)
    assert hits == [], hits


def _upgrade_status(url: str, host: str) -> str:
    """The status line the studio answers to a WebSocket upgrade sent with ``Host: host``."""
    import base64

    port = int(url.rsplit(":", 1)[1])
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n"
               "Sec-WebSocket-Protocol: streamlit\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        return conn.recv(1024).decode(errors="replace").split("\r\n", 1)[0]


def test_a_rebound_host_name_cannot_open_the_session(studio: str) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches the studio with
    ``Host: evil.example``; the WebSocket (every figure and image travels over it) is refused."""
    assert " 101 " in _upgrade_status(studio, studio.split("//", 1)[1]) + " "  # the real host: accepted
    refused = _upgrade_status(studio, "evil.example:8501")
    assert " 101 " not in refused + " ", refused


# The leaderboard is a canvas (glide data grid): a header's room is read off the drawn column lines (the body
# canvas's top pixel row) and its text measured in the grid's own header font.
HEADERS_JS = """grid => {
  const css = getComputedStyle(grid.querySelector('.stDataFrameGlideDataEditor'));
  const font = css.getPropertyValue('--gdg-header-font-style') + ' ' + css.getPropertyValue('--gdg-font-family');
  const pad = parseFloat(css.getPropertyValue('--gdg-cell-horizontal-padding'));
  const body = [...grid.querySelectorAll('canvas')].sort((a, b) => b.height - a.height)[0];
  const px = body.getContext('2d').getImageData(0, 2, body.width, 1).data;
  const edges = [0];
  for (let x = 1; x < body.width; x++) if (px[4 * x] < 245 && x - edges[edges.length - 1] > 2) edges.push(x);
  edges.push(body.width);
  const text = document.createElement('canvas').getContext('2d');
  text.font = font;
  return [...grid.querySelectorAll('th')].map((th, k) =>
    [th.innerText, pad + text.measureText(th.innerText).width, edges[k + 1] - edges[k]]);
}"""
# a thumbnail's drawn box against its picture: [natural w/h, drawn w/h]
SHAPES_JS = """() => [...document.querySelectorAll("[data-testid='stImage'] img")].map(img =>
  [img.naturalWidth / img.naturalHeight, img.getBoundingClientRect().width / img.getBoundingClientRect().height])"""
# every tick and legend label of every plotly chart against its figure: [text, inside]
LABELS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
  const frame = plot.querySelector('.main-svg').getBoundingClientRect();
  return [...plot.querySelectorAll('.xtick text, .ytick text, .legendtext, .g-xtitle text, .g-ytitle text')].map(t => {
    const box = t.getBoundingClientRect();
    return [t.textContent, box.left >= frame.left - 1 && box.right <= frame.right + 1 && box.top >= frame.top - 1
            && box.bottom <= frame.bottom + 1];
  });
})"""


def test_headers_names_labels_and_thumbnails_are_whole_at_1280_and_1600(studio: str, page) -> None:
    """Readable on a laptop and a desktop: no leaderboard header clipped (all columns in view), no chart label
    outside its figure, no thumbnail squeezed out of its picture's shape (Ranked's compact grid, Failures)."""
    try:
        for width, height in VIEWPORTS:
            page.set_viewport_size({"width": width, "height": height})
            page.goto(f"{studio}/")
            page.get_by_role("heading", name="Cache").wait_for(timeout=WAIT_S * 1000)
            settle(page)
            grid = page.locator("[data-testid='stDataFrame']").first
            grid.locator("th", has_text="gallery").first.wait_for(state="attached", timeout=60_000)
            page.locator(".js-plotly-plot .xtick").first.wait_for(timeout=60_000)
            page.screenshot(path=str(shots() / f"overview-{width}.png"))
            headers = grid.evaluate(HEADERS_JS)
            assert all(text <= room for _, text, room in headers), headers  # (text + left padding) within
            assert [h for h, _, _ in headers][-6:] == GALLERY_COLUMNS, headers  # the last column in view too
            labels = page.evaluate(LABELS_JS)
            assert labels and all(inside for _, inside in labels), labels
            for path in ("ranked", "failures"):  # zero-shot on combined: failures on the demo, as the default may not
                page.goto(f"{studio}/{path}?backbone=combined&method=zero-shot&options=[]&rerank=none")
                settle(page)
                page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stImage'] img\")]"
                                       ".filter(i => i.complete && i.naturalWidth).length >= 4", timeout=WAIT_S * 1000)
                page.screenshot(path=str(shots() / f"{path}-{width}.png"))
                shapes = page.evaluate(SHAPES_JS)
                assert all(abs(drawn / picture - 1) < 0.03 for picture, drawn in shapes if picture), shapes
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_no_page_asked_another_host(page) -> None:
    """After every test above (pages, charts, the map's selection, Train, the full-size dialog, Why, the
    Submission's download): nothing was asked of a host other than the studio's own."""
    assert offsite(page) == []
