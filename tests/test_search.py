"""Search by example (tll_core/search.py and the Search page): nearest lefts and rights of one image under the
matcher's own scores, exact and faiss, folder images and uploads."""
from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tll_core.engine import Engine
from tll_core.errors import DataError, TLLError
from tll_core.evaluation.gallery import faiss_importable
from tll_core.evaluation.tasks import truth_rights
from tll_core.images import MAX_IMAGE_BYTES
from tll_core.search import Query, holding_lefts, nearest, read_upload, upload_query
from tll_core.selection import Selection

ROOT = Path(__file__).resolve().parent.parent
needs_faiss = pytest.mark.skipif(not faiss_importable(), reason="faiss is not installed")


def zero_shot(backbone: str = "combined", centre: bool = True) -> Selection:
    return Selection(backbone=backbone, method="zero-shot", rerank="none", options=(), rerank_options=(),
                     centre=centre)


@pytest.fixture
def eng(demo_dir: Path, warm_demo_cache: Path) -> Engine:
    return Engine.open(demo_dir)


def _cosine(left: np.ndarray, right: np.ndarray, centre: bool) -> np.ndarray:
    """Cosine of every left with every right, in numpy (centred on all of them when ``centre``)."""
    if centre:
        mean = np.concatenate([left, right]).mean(axis=0)
        left, right = left - mean, right - mean
    left = left / np.linalg.norm(left, axis=1, keepdims=True)
    right = right / np.linalg.norm(right, axis=1, keepdims=True)
    return left @ right.T


@pytest.mark.parametrize("centre", [False, True])
def test_the_nearest_rights_of_a_left_under_zero_shot_cosine_are_its_cosine_order(eng: Engine, centre: bool) -> None:
    sel = zero_shot(centre=centre)
    tasks, _ = eng.tasks_for("validation")
    left, right = eng.task_embeddings(tasks, "combined")
    cosine = _cosine(left, right, centre)
    for i in (0, 7):
        found = nearest(eng, sel, Query.of_image(tasks.left_ids[i]), "right", k=5, backend="exact")
        order = np.argsort(-cosine[i], kind="stable")[:5]
        assert found.neighbours[0].image_id == tasks.right_ids[int(np.argmax(cosine[i]))]
        assert [n.image_id for n in found.neighbours] == [tasks.right_ids[j] for j in order]
        np.testing.assert_allclose([n.score for n in found.neighbours], cosine[i, order], atol=1e-5)
        assert [n.rank for n in found.neighbours] == [1, 2, 3, 4, 5] and found.searched == len(tasks.right_ids)
    # and the nearest lefts of a right: its column
    j = 3
    found = nearest(eng, sel, Query.of_image(tasks.right_ids[j]), "left", k=4, backend="exact")
    order = np.argsort(-cosine[:, j], kind="stable")[:4]
    assert [n.image_id for n in found.neighbours] == [tasks.left_ids[i] for i in order]
    assert "cosine" in found.meaning and ("centred" in found.meaning) == centre


def test_an_image_never_finds_itself_and_a_right_opens_the_tasks_that_hold_it(eng: Engine) -> None:
    tasks, _ = eng.tasks_for("validation")
    right = tasks.right_ids[5]
    found = nearest(eng, zero_shot(), Query.of_image(right), "right", k=len(tasks.right_ids))
    ids = [n.image_id for n in found.neighbours]
    assert right not in ids and len(ids) == len(tasks.right_ids) - 1 == found.searched
    for n in found.neighbours[:3]:
        j = tasks.right_ids.index(n.image_id)
        holders = [tasks.left_names[i] for i in range(len(tasks)) if j in tasks.candidates[i]]
        assert sorted(n.lefts) == sorted(holders)
        owner = int(np.flatnonzero(truth_rights(tasks) == j)[0])
        assert n.lefts[0] == tasks.left_names[owner]  # the left whose truth it is first
    left = nearest(eng, zero_shot(), Query.of_image(tasks.left_ids[2]), "left", k=3)
    assert tasks.left_ids[2] not in [n.image_id for n in left.neighbours]
    assert all(n.lefts == (n.name,) for n in left.neighbours)
    assert holding_lefts(tasks, 5)[0] == tasks.left_names[int(np.flatnonzero(truth_rights(tasks) == 5)[0])]


@needs_faiss
def test_faiss_and_exact_agree(eng: Engine) -> None:
    tasks, _ = eng.tasks_for("validation")
    upload = upload_query(eng, zero_shot(), read_upload("q.png", eng.dataset.read_image(tasks.left_ids[4]).data))
    for query in (Query.of_image(tasks.left_ids[1]), Query.of_image(tasks.right_ids[2]), upload):
        for side in ("left", "right"):
            exact = nearest(eng, zero_shot(), query, side, k=8, backend="exact")
            fast = nearest(eng, zero_shot(), query, side, k=8, backend="faiss")
            assert (exact.backend, fast.backend) == ("exact", "faiss")
            assert [n.image_id for n in fast.neighbours] == [n.image_id for n in exact.neighbours]
            np.testing.assert_allclose([n.score for n in fast.neighbours], [n.score for n in exact.neighbours],
                                       atol=1e-5)
    with pytest.raises(TLLError, match="faiss backend searches zero-shot cosine only"):
        nearest(eng, replace(zero_shot(), metric="euclidean"), Query.of_image(tasks.left_ids[0]), "right",
                backend="faiss")


@pytest.mark.slow
def test_a_learned_matcher_s_nearest_follow_its_own_scores(eng: Engine) -> None:
    """The pair classifier scores (left, right) asymmetrically: a query's nearest rights are its row of the
    matcher's gallery scores, its nearest lefts its column (the query played as a right)."""
    sel = Selection(backbone="combined", method="pair-classifier", rerank="none", options=(("epochs", 5),),
                    rerank_options=())
    tasks, fit = eng.tasks_for("validation")
    matcher = eng.fit(sel.to_method(), "combined", fit)
    left, right = eng.task_embeddings(tasks, "combined")
    scores = matcher.gallery(left, right).scorer(0, len(left))  # [n, m]: every left against every right
    i, j = 3, 6
    rights = nearest(eng, sel, Query.of_image(tasks.left_ids[i]), "right", k=6)
    assert [n.image_id for n in rights.neighbours] == [tasks.right_ids[c] for c in np.argsort(-scores[i], kind="stable")[:6]]
    np.testing.assert_allclose([n.score for n in rights.neighbours], np.sort(scores[i])[::-1][:6], atol=1e-5)
    lefts = nearest(eng, sel, Query.of_image(tasks.right_ids[j]), "left", k=6)
    assert [n.image_id for n in lefts.neighbours] == [tasks.left_ids[r] for r in np.argsort(-scores[:, j], kind="stable")[:6]]
    np.testing.assert_allclose([n.score for n in lefts.neighbours], np.sort(scores[:, j])[::-1][:6], atol=1e-5)
    assert "logit" in lefts.meaning


@pytest.mark.parametrize("backbone", ["combined", "hog+colour-hist"])
def test_an_upload_is_embedded_as_the_folder_image_and_never_cached(eng: Engine, backbone: str) -> None:
    tasks, _ = eng.tasks_for("validation")
    image_id = tasks.left_ids[0]
    sel = zero_shot(backbone)
    before = eng.stats.computed
    cache_file = Path(eng.cache.directory)
    sizes = {p: p.stat().st_size for p in cache_file.rglob("*") if p.is_file()}
    query = upload_query(eng, sel, read_upload("mine.jpg", eng.dataset.read_image(image_id).data))
    [(view, vector)] = query.vectors
    np.testing.assert_array_equal(vector, eng.embed([image_id], backbone)[0])
    assert eng.stats.computed > before  # computed from the bytes, not taken from the cache
    assert {p: p.stat().st_size for p in cache_file.rglob("*") if p.is_file()} == sizes  # nothing written
    assert query.name == "upload:mine.jpg" and query.image_id is None
    found = nearest(eng, sel, query, "right", k=3)
    as_folder = nearest(eng, sel, Query.of_image(image_id), "right", k=3)
    assert found.neighbours[0].image_id == as_folder.neighbours[0].image_id


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("data, says", [
    (b"", "empty file"),
    (b"not an image at all", "not a readable image"),
    (_png((40, 40))[:60], "corrupt image"),  # a valid header, its pixel data cut off
    (_png((64, 64))[:-40] + b"\0" * 40, "corrupt image"),  # pixel data damaged
    (_png((8000, 6000), "L"), "decompression bomb"),
    (b"\xff" * (MAX_IMAGE_BYTES + 1), "over the"),
], ids=["empty", "not-an-image", "truncated", "damaged", "bomb", "too-large"])
def test_a_bad_upload_is_one_line_naming_it(data: bytes, says: str) -> None:
    with pytest.raises(DataError) as caught:
        read_upload("../../etc/evil\nname.png", data)
    message = str(caught.value)
    assert says in message and "\n" not in message and message.startswith("upload:evil name.png")


def test_an_unknown_side_is_one_line(eng: Engine) -> None:
    with pytest.raises(TLLError, match="unknown side 'middle'"):
        nearest(eng, zero_shot(), Query.of_image(eng.tasks_for("validation")[0].left_ids[0]), "middle")


# ---------------------------------------------------------------- the Search page (AppTest)


@pytest.mark.slow
def test_the_search_page_finds_neighbours_and_opens_one_in_ranked(eng: Engine) -> None:
    from streamlit.testing.v1 import AppTest

    tasks, _ = eng.tasks_for("validation")
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.query_params.update(backbone="combined", method="zero-shot", rerank="none")
    app.run()
    app.switch_page("pages/ranked.py").run()
    left = app.get("image")[0].proto.imgs[0].caption.removeprefix("left ")
    next(b for b in app.main.button if b.label == "search from this left").click().run()  # Ranked → Search
    assert not app.exception and not app.error, (app.exception, app.error)
    assert app.title[0].value == "Search by example"
    left_id = tasks.left_ids[tasks.left_names.index(left)]
    assert app.selectbox(key="search_image").value == left_id == app.query_params["query"]  # a link reopens it
    captions = [str(i.proto.imgs[0].caption) for i in app.get("image")]
    assert captions[0] == f"query: left · {left}" and len(captions) == 1 + 20  # the query, 10 rights, 10 lefts
    assert [s.value for s in app.subheader] == ["Nearest rights (the query as a left)",
                                                "Nearest lefts (the query as a right)"]
    assert any("cosine similarity" in c.value for c in app.caption)
    expected = nearest(eng, zero_shot(), Query.of_image(left_id), "right", k=3)
    shown = [c.value for c in app.caption if c.value.startswith("#")]
    assert [c.split(" · ")[2] for c in shown[:3]] == [n.name for n in expected.neighbours]
    # a right, and fewer neighbours
    right_id = tasks.right_ids[2]
    app.switch_page("pages/search.py")  # AppTest runs the page it was last told to, not the one switched to
    app.selectbox(key="search_image").set_value(right_id).run()
    assert not app.exception and not app.error, (app.exception, app.error, app.title)
    app.number_input(key="search_k").set_value(4).run()
    assert not app.exception and not app.error
    assert len(app.get("image")) == 1 + 8 and app.query_params["query"] == right_id
    opens = [b for b in app.main.button if b.label == "open in Ranked"]
    assert len(opens) == 8
    target = opens[0].help.removeprefix("Ranked candidates of left ").replace("\\", "")
    opens[0].click().run()  # the nearest right's task, in Ranked
    assert not app.exception and not app.error
    assert app.title[0].value == "Ranked candidates"
    assert app.get("image")[0].proto.imgs[0].caption == f"left {target}" and app.query_params["left"] == target
