"""The report to hand in (``tll_core/report.py``, ``python -m tll_core report``, the Compare page's download): one
self-contained HTML file whose figures are the CLI's own, and its tables and charts as files beside it."""
from __future__ import annotations

import csv
import html
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tll_core.analysis import compare, failures
from tll_core.cli import main
from tll_core.dataset import load_dataset
from tll_core.engine import Engine, Method
from tll_core.evaluation.figures import figures_of
from tll_core.evaluation.metrics import NonFiniteScores
from tll_core.report import (ReportError, ScoredMethod, build_report, chart_svg, figures_folder, render_html,
                             write_report)
from tll_core.tags import TagStore, tag_table

ROOT = Path(__file__).resolve().parent.parent
BACKBONES = ("colour-hist", "tiny-image")
FLAGS = ["--backbone", BACKBONES[0], "--backbone", BACKBONES[1], "--method", "zero-shot", "--rerank", "none"]
LABELS = [f"{b} · zero-shot · cosine" for b in BACKBONES]
FIGURE_FILES = {"leaderboard.csv", "mcnemar.csv", "worst_failures.csv", "compare.csv", "compare_slices.csv",
                "top2.svg", "top2.png"}


def _exit_code(argv: list[str]) -> int:
    """``main``'s exit code; argparse's own refusals (a flag's type) exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _scores(demo_dir: Path):
    """The demo's default validation tasks and each backbone's zero-shot cosine scores, as the engine makes them."""
    engine = Engine(load_dataset(demo_dir))
    split = engine.validation()
    return engine, split.tasks, [engine.score(split.tasks, b, Method.zero_shot(), split.fit) for b in BACKBONES]


@pytest.fixture
def report_out(demo_dir: Path, warm_demo_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """The CLI's report of the two weight-free methods on the demo (its tags: one tagged left)."""
    engine, tasks, _ = _scores(demo_dir)
    TagStore.open(demo_dir).add(tasks.left_names[0], "colour match")
    out = tmp_path / "out" / "report.html"
    assert main(["report", "--data", str(demo_dir), *FLAGS, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    return out


def test_the_cli_writes_the_html_and_every_figure_file(report_out: Path, demo_dir: Path) -> None:
    folder = figures_folder(report_out)
    assert folder == report_out.parent / "report_figures"
    assert {p.name for p in folder.iterdir()} == FIGURE_FILES | {"tags.csv"}
    assert (folder / "top2.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = ET.fromstring((folder / "top2.svg").read_text())  # well-formed XML
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and "tiny-image · zero-shot · cosine" in ET.tostring(svg, "unicode")
    text = report_out.read_text()
    assert text.startswith("<!doctype html>") and all(label in text for label in LABELS)
    _, tasks, scores = _scores(demo_dir)
    expected = [(row.tag, label, row.lefts, row.top2_hits, row.mean_rank)
                for label, s in zip(LABELS, scores) for row in tag_table(TagStore.open(demo_dir), tasks, s)]
    tags = _csv(folder / "tags.csv")
    assert [(r["tag"], r["method"], int(r["lefts"]), int(r["top-2 hits"]), float(r["mean rank"])) for r in tags] \
        == expected and [r[:3] for r in expected] == [("colour match", label, 1) for label in LABELS]
    assert 'id="tags"' in text


def test_the_leaderboard_is_evaluates_own_figures(report_out: Path, demo_dir: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--data", str(demo_dir), *FLAGS, "--json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    board = _csv(figures_folder(report_out) / "leaderboard.csv")
    assert [r["method"] for r in board] == LABELS and len(rows) == 2
    figures = figures_of("tasks")
    assert len(figures) >= 5
    for row, line in zip(rows, board):
        for f in figures:  # every registered figure, by its label, exactly (the CSV keeps the float whole)
            assert float(line[f.label]) == row[f.name], (f.name, line, row)
        assert [float(line["top2 95% CI low"]), float(line["top2 95% CI high"])] == row["top2_ci"]
        assert int(line["n"]) == row["n"]
        shown = f"<td class=\"n\">{row['top2']:.3f}</td>"
        assert shown in report_out.read_text()


def test_the_mcnemar_table_and_the_slices_are_analysis_compares(report_out: Path, demo_dir: Path) -> None:
    _, tasks, (a, b) = _scores(demo_dir)
    c = compare(tasks, a, b)
    [row] = _csv(figures_folder(report_out) / "mcnemar.csv")
    assert (row["A"], row["B"]) == tuple(LABELS)
    assert float(row["p"]) == c.p_value
    assert (int(row["A right, B wrong"]), int(row["B right, A wrong"])) == (len(c.a_only), len(c.b_only))
    [counts] = _csv(figures_folder(report_out) / "compare.csv")
    assert {name: int(counts[name]) for name in c.slices} == {name: len(s) for name, s in c.slices.items()}
    members = _csv(figures_folder(report_out) / "compare_slices.csv")
    for name, lefts in c.slices.items():
        assert [m["left"] for m in members if m["slice"] == name] == [tasks.left_names[i] for i in lefts]
    text = report_out.read_text()
    assert f"{len(c.b_only)} lefts" in text and f"<td class=\"n\">{c.p_value:.3g}</td>" in text


def test_the_worst_failures_list_every_candidate_that_beat_the_truth(report_out: Path, demo_dir: Path) -> None:
    _, tasks, (first, _) = _scores(demo_dir)
    expected = failures(tasks, first)[:20]
    assert len(expected) == 20 and any(len(f.beaten_by) > 10 for f in expected)
    rows = _csv(figures_folder(report_out) / "worst_failures.csv")
    assert list(dict.fromkeys(r["left"] for r in rows)) == [f.left for f in expected]
    text = report_out.read_text()
    for f in expected:
        mine = [r for r in rows if r["left"] == f.left]
        truth = tasks.right_names[tasks.candidates[f.index, tasks.truth[f.index]]]
        assert [(r["candidate"], r["role"], int(r["rank"])) for r in mine[:1]] == [(truth, "truth", f.truth_rank)]
        beaten = [tasks.right_names[tasks.candidates[f.index, p]] for p in f.beaten_by]
        assert [r["candidate"] for r in mine[1:]] == beaten and {r["role"] for r in mine[1:]} == {"beat the truth"}
        card = re.search(rf"<h3>{re.escape(f.left)} — truth rank {f.truth_rank}, margin [^,]+, "
                         rf"beaten by (\d+)</h3>(.*?)</div></div>", text)
        assert card and int(card.group(1)) == len(beaten)
        assert card.group(2).count("<figure") == 2 + len(beaten)  # the left, its truth, every one that beat it


def test_the_html_asks_no_host_for_anything(report_out: Path) -> None:
    text = report_out.read_text()
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    assert "default-src 'none'" in text  # the CSP forbids any fetch but data: images
    urls = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert urls and all(u.startswith(("data:image/jpeg;base64,", "#")) for u in urls), set(urls) - {""}
    assert text.count("<image id=") == len(set(re.findall(r'<image id="[^"]+" href="([^"]+)"', text)))  # once each


def test_user_text_is_escaped(demo_dir: Path, warm_demo_cache: Path, tmp_path: Path) -> None:
    """A left, a candidate and a method named with markup appear only escaped, in the HTML and the SVG; a
    label starting with = is text in the CSV."""
    _, tasks, (a, b) = _scores(demo_dir)
    evil = '<img src=x onerror="alert(1)">&amp;\'"'
    tasks = replace(tasks, left_names=(evil,) + tasks.left_names[1:],
                    right_names=tuple(evil + n for n in tasks.right_names))
    order = failures(tasks, a)
    a = a.copy()
    a[0] = a[order[0].index]  # the first left fails as the worst one does: its name is on a card
    a[0, tasks.truth[0]] = a[0].min() - 1
    methods = [ScoredMethod(f"=cmd|' /C calc'!A0 <b>{evil}", a), ScoredMethod("plain", b)]
    report = build_report(load_dataset(demo_dir), tasks, methods, worst=40)
    text = render_html(report)
    assert evil not in text and "<b>&lt;" not in text and "A0 <b>" not in text and "<img" not in text
    assert html.escape(evil) in text and html.escape(f"A0 <b>{evil}") in text
    assert chart_svg(report.chart).count("&lt;b&gt;") == 1
    ET.fromstring(chart_svg(report.chart))
    paths = write_report(report, tmp_path / "r.html")
    assert paths[0] == tmp_path / "r.html" and len(paths) == 1 + len(FIGURE_FILES)
    board = _csv(tmp_path / "r_figures" / "leaderboard.csv")
    assert board[0]["method"].startswith("'=cmd")


def test_bad_scores_and_labels_are_one_line_errors(demo_dir: Path, warm_demo_cache: Path) -> None:
    dataset = load_dataset(demo_dir)
    _, tasks, (a, b) = _scores(demo_dir)
    bad = a.copy()
    bad[3, 4] = np.nan
    with pytest.raises(NonFiniteScores, match="'x': 1 non-finite value"):
        build_report(dataset, tasks, [ScoredMethod("x", bad)])
    for methods, compared, problem in [
        ([ScoredMethod("x", a), ScoredMethod("x", b)], None, "two methods are labelled 'x'"),
        ([ScoredMethod("x", a[:5])], None, "scores of shape"),
        ([ScoredMethod("x", a), ScoredMethod("y", b)], ("x", "z"), "--compare 'z': no such method"),
        ([ScoredMethod("x", a), ScoredMethod("y", b)], ("x", "x"), "names 'x' twice"),
        ([], None, "at least one method"),
    ]:
        with pytest.raises(ReportError, match=re.escape(problem)):
            build_report(dataset, tasks, methods, compare=compared)
    with pytest.raises(ReportError, match="at least 1"):
        build_report(dataset, tasks, [ScoredMethod("x", a)], worst=0)
    one = build_report(dataset, tasks, [ScoredMethod("x", a)], worst=3)  # one method: no test, no slices
    assert one.mcnemar is None and one.comparison is None and len(one.worst) == 3


@pytest.mark.parametrize("extra, problem", [
    (["--compare", LABELS[0], "no such"], "--compare 'no such': no such method; choose from"),
    (["--compare", LABELS[0], LABELS[0]], "twice"),
    (["--worst", "0"], "--worst 0"),
    (["--worst", "-3"], "--worst -3"),
    (["--worst", "x"], "not a whole number"),
])
def test_bad_flags_are_one_line_and_exit_2(extra: list[str], problem: str, demo_dir: Path, warm_demo_cache: Path,
                                           tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused in one line before any method is scored."""
    scored: list[int] = []
    real = Engine.score
    monkeypatch.setattr(Engine, "score", lambda self, *a, **kw: scored.append(1) or real(self, *a, **kw))
    out = tmp_path / "r.html"
    assert _exit_code(["report", "--data", str(demo_dir), *FLAGS, "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and problem in err, err
    assert not out.exists() and not figures_folder(out).exists() and not scored


def test_an_unwritable_out_is_one_line_and_exit_2(demo_dir: Path, warm_demo_cache: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    scored: list[str] = []
    real = Engine.score
    monkeypatch.setattr(Engine, "score", lambda self, *a, **kw: scored.append(1) or real(self, *a, **kw))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    (tmp_path / "taken_figures").write_text("x")
    read_only = tmp_path / "read-only.html"
    read_only.write_text("x")
    read_only.chmod(0o444)
    cases = [(tmp_path, "is a folder"), (a_file / "r.html", "is not a folder"),
             (tmp_path / "taken.html", "taken_figures: not a folder"),
             (demo_dir / "train.csv", "is a file of the data folder")]
    if os.geteuid() != 0:  # root writes anything
        cases.append((read_only, "is read-only"))
    for out, problem in cases:
        assert main(["report", "--data", str(demo_dir), *FLAGS, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and problem in err, (out, err)
    assert not scored  # refused before any scoring
    assert a_file.read_text() == "x"


def test_a_second_report_removes_the_files_the_first_left(demo_dir: Path, warm_demo_cache: Path, tmp_path: Path) -> None:
    dataset = load_dataset(demo_dir)
    _, tasks, (a, b) = _scores(demo_dir)
    store = TagStore.open(demo_dir)
    store.add(tasks.left_names[1], "face")
    out = tmp_path / "r.html"
    write_report(build_report(dataset, tasks, [ScoredMethod("x", a), ScoredMethod("y", b)], tags=store), out)
    assert (tmp_path / "r_figures" / "tags.csv").is_file()
    store.remove(tasks.left_names[1], "face")
    files = write_report(build_report(dataset, tasks, [ScoredMethod("x", a)], tags=store), out)
    assert {p.name for p in (tmp_path / "r_figures").iterdir()} == {p.name for p in files[1:]}
    assert {p.name for p in files[1:]} == {"leaderboard.csv", "worst_failures.csv", "top2.svg", "top2.png"}
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "r_figures").glob(".*.tmp"))


@pytest.mark.slow
def test_the_compare_page_offers_the_report(warm_demo_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download button's bytes — as the browser would get them, from Streamlit's media store — are the report
    of the methods picked on the page."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import AppTest

    stores: list[MemoryMediaFileStorage] = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, value in {"backbone": "combined", "method": "zero-shot", "rerank": "none"}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    [button] = [b for b in at.get("download_button") if b.proto.label == "Download the report (HTML)"]
    content = stores[-1].get_file(button.proto.url.rsplit("/", 1)[1]).content
    text = content.decode("utf-8")
    picked = at.multiselect(key="compare_methods").value
    assert len(picked) == 2 and text.startswith("<!doctype html>")
    assert all(html.escape(label) in text for label in picked)
    assert 'id="leaderboard"' in text and 'id="failures"' in text and 'id="compare"' in text
    assert "http://" not in text and "https://" not in text


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.slow
@pytest.mark.browser
def test_the_report_in_chromium_with_the_network_blocked(report_out: Path) -> None:
    """Opened from a file:// URL with every other request aborted (and counted: none is made), the leaderboard,
    the chart and the failures' thumbnails show; a screenshot is saved under cache/screenshots/."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("TLL_REQUIRE_BROWSER"):
            raise RuntimeError(f"{CHROMIUM} is missing but TLL_REQUIRE_BROWSER is set")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    shots = Path(os.environ.get("TLL_SCREENSHOTS") or (ROOT / "cache" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    requests, aborted = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.route(lambda url: not url.startswith("file:"), lambda route: (aborted.append(route.request.url),
                                                                               route.abort()))
            page.goto(report_out.as_uri())
            page.wait_for_load_state("load")
            assert page.locator("#leaderboard table").is_visible()
            assert page.locator("#leaderboard table tbody tr").count() == 2
            assert page.locator("#leaderboard .chart svg rect").count() >= 3  # the background and a bar each
            assert page.locator("#failures .card").count() == 20
            page.screenshot(path=shots / "report.png")
            first = page.locator("#failures .card figure .img").first
            first.scroll_into_view_if_needed()
            assert first.is_visible()
            thumbnail = shots / "report-thumbnail.png"
            first.screenshot(path=thumbnail)
            page.locator("#failures").scroll_into_view_if_needed()
            page.evaluate("document.getElementById('failures').scrollIntoView()")
            page.screenshot(path=shots / "report-failures.png")
        finally:
            browser.close()
    pixels = np.asarray(Image.open(thumbnail).convert("L"), dtype=np.float64)[8:-8, 8:-8]  # inside its frame
    assert pixels.std() > 10, "the thumbnail drawn by <use> is blank"
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == [] and aborted == []
    assert any(u.startswith("file:") for u in requests)


def test_your_own_scores_and_embeddings_are_methods_of_the_report(demo_dir: Path, warm_demo_cache: Path,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--scores`` and ``--embeddings`` (tll_core/imported.py) join the report as they join ``evaluate``: the same
    figures, labelled by their names, comparable by label."""
    from test_imported import export_embeddings, exported, known_rank_scores

    from tll_core.imported import forget_imports

    tasks_csv, _ = exported(capsys, demo_dir, tmp_path)
    scores, ranks = known_rank_scores(tasks_csv, demo_dir, tmp_path / "mine.csv")
    vectors = export_embeddings(demo_dir, tmp_path / "vectors.npz", backbone="colour-hist")
    flags = ["--scores", f"mine={scores}", "--embeddings", f"vec={vectors}", "--backbone", "tiny-image",
             "--method", "zero-shot", "--rerank", "none", "--quiet"]
    out = tmp_path / "r.html"
    try:
        assert main(["report", "--data", str(demo_dir), *flags, "--out", str(out), "--compare", "mine",
                     "vec · zero-shot · cosine"]) == 0
        capsys.readouterr()
        assert main(["evaluate", "--data", str(demo_dir), *flags, "--json"]) == 0
    finally:
        forget_imports()
    rows = json.loads(capsys.readouterr().out)
    board = _csv(figures_folder(out) / "leaderboard.csv")
    assert [r["method"] for r in board] == ["tiny-image · zero-shot · cosine", "vec · zero-shot · cosine", "mine"]
    assert [(r["backbone"], r["method"]) for r in rows] == [("tiny-image", "zero-shot"), ("vec", "zero-shot"),
                                                          ("-", "mine")]
    for row, line in zip(rows, board):
        assert {f.name: float(line[f.label]) for f in figures_of("tasks")} == {f.name: row[f.name]
                                                                               for f in figures_of("tasks")}
    assert float(board[2]["top2"]) == (ranks <= 2).mean()
    [compared] = _csv(figures_folder(out) / "compare.csv")
    assert (compared["A"], compared["B"]) == ("mine", "vec · zero-shot · cosine")
