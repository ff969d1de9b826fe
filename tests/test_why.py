"""The Why view: where a left and a candidate match (``tll_core.why``) and its studio page.

Descriptor maps are checked against the engine's own zero-shot scores (their cells must sum to them) and
against skimage's HOG layout; deep maps against the model's own feature map and pooled embedding, with
random weights (the same code path as real ones) and with the packaged EfficientNet-Lite0 weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.feature import hog

from tll_core.backbones.registry import BACKBONES
from tll_core.backbones.feature_maps import crop_region, transform_steps
from tll_core.backbones.weight_free import (CELL_GRID, HOG_BINS, HOG_BLOCK, HOG_CELL, HOG_SCALES, contributions, gray,
                                            hog_cells, hog_descriptor, hog_dims)
from tll_core.cache import EmbeddingCache
from tll_core.dataset import load_dataset
from tll_core.engine import Engine
from tll_core.errors import TLLError
from tll_core.matchers import ZeroShot
from tll_core.why import (VIRIDIS, NoSpatialMap, SimilarityMap, centre_of, colormap, explainable_members, overlay,
                          read_rgb, render, why)

ROOT = Path(__file__).resolve().parent.parent


def _engine(demo_dir: Path, cache: Path | None = None, **kw) -> Engine:
    return Engine(load_dataset(demo_dir), EmbeddingCache(cache) if cache else None, **kw)


def _pairs(eng: Engine, n: int = 4) -> list[tuple[int, int]]:
    """(left, candidate position) pairs of the validation tasks: each left's truth and a foil."""
    tasks = eng.validation().tasks
    return [(i, int(p)) for i in range(n) for p in (tasks.truth[i], (tasks.truth[i] + 1) % 20)]


# ------------------------------------------------------------ HOG and the other descriptors


def test_the_hog_descriptor_is_skimages_block_layout() -> None:
    """What hog_cells assumes: each scale's part is skimage's (block row, block col, cell row, cell col,
    orientation) array, raveled, and the parts fill the registry's dimension."""
    im = Image.fromarray((np.random.default_rng(0).random((245, 200, 3)) * 255).astype(np.uint8))
    parts = [hog(gray(im, size), orientations=HOG_BINS, pixels_per_cell=(HOG_CELL, HOG_CELL),
                 cells_per_block=(HOG_BLOCK, HOG_BLOCK), block_norm="L2-Hys", transform_sqrt=True,
                 feature_vector=False) for size in HOG_SCALES]
    assert [p.shape[:2] + (p.size,) for p in parts] == hog_dims()
    assert np.array_equal(np.concatenate([p.ravel() for p in parts]), hog_descriptor(im))
    assert sum(d for *_, d in hog_dims()) == BACKBONES["hog"].dim


def test_each_hog_dimension_lands_on_its_own_cell() -> None:
    """One dimension (block (r, c), cell (i, j) of the block) of the finer scale lands on cell (r+i, c+j); one of
    the coarser scale (cells twice as large) is shared by the four finer cells it covers."""
    rows, cols, dims = hog_dims()[0]
    products = np.zeros(sum(d for *_, d in hog_dims()))
    block = np.zeros((rows, cols, HOG_BLOCK, HOG_BLOCK, HOG_BINS))
    block[2, 3, 1, 2, 4] = 1.0
    products[:dims] = block.ravel()
    grid = hog_cells(products)
    assert grid.shape == CELL_GRID == (HOG_SCALES[0][1] // HOG_CELL, HOG_SCALES[0][0] // HOG_CELL)
    assert grid[3, 5] == 1.0 and grid.sum() == 1.0
    coarse_rows, coarse_cols, coarse_dims = hog_dims()[1]
    products[:] = 0
    coarse = np.zeros((coarse_rows, coarse_cols, HOG_BLOCK, HOG_BLOCK, HOG_BINS))
    coarse[1, 0, 2, 1, 0] = 1.0  # coarse cell (3, 1): fine cells rows 6-7, cols 2-3
    products[dims : dims + coarse_dims] = coarse.ravel()
    grid = hog_cells(products)
    assert np.allclose(grid[6:8, 2:4], 0.25) and np.isclose(grid.sum(), 1.0)


def test_hog_heat_sits_where_the_two_images_share_edges() -> None:
    """Two images alike only in their top half (the bottom of one is flat grey: no gradients): the bottom
    cells, whose blocks see only that flat part, add nothing; the top ones carry the score."""
    rng = np.random.default_rng(1)
    top = (rng.random((120, 200, 3)) * 255).astype(np.uint8)
    a = np.concatenate([top, (rng.random((125, 200, 3)) * 255).astype(np.uint8)])
    b = np.concatenate([top, np.full((125, 200, 3), 128, np.uint8)])
    shares = contributions(hog_descriptor(Image.fromarray(a)), hog_descriptor(Image.fromarray(b)), "hog")
    grid, unmapped, score = shares.grid, shares.unmapped, shares.score
    assert unmapped == 0.0 and np.isclose(grid.sum(), score) and score > 0.2
    assert np.allclose(grid[6:], 0.0, atol=1e-9)  # rows 6-9 of 10: every block there lies in the flat bottom
    assert grid[:5].sum() > 0.9 * score  # rows 0-4: the shared top half (60 of the 120 rows HOG sees)


@pytest.mark.parametrize("backbone", ["hog", "combined", "tiny-image"])
def test_descriptor_contributions_sum_to_the_engines_zero_shot_score(demo_dir: Path, warm_demo_cache: Path,
                                                                    backbone: str) -> None:
    """The cells (and the colour histogram's one term, for combined) add up to the score the zero-shot matcher
    gives the pair: centred (its default) and not."""
    eng = _engine(demo_dir, warm_demo_cache)
    tasks = eng.validation().tasks
    left, right = eng.task_embeddings(tasks, backbone)
    mean, unmapped = centre_of(eng, tasks, backbone), []
    for centred in (True, False):
        expected = ZeroShot("cosine", centre=centred).score(left, right, tasks.candidates)
        for i, pos in _pairs(eng):
            cand = tasks.right_ids[tasks.candidates[i, pos]]
            pair = why(eng, backbone, tasks.left_ids[i], cand, centre=mean if centred else None)
            assert pair.kind == "descriptor" and pair.member == backbone
            assert pair.left_map.grid.shape == pair.candidate_map.grid.shape == CELL_GRID
            assert np.isclose(pair.left_map.grid.sum() + pair.unmapped, expected[i, pos], atol=1e-5)
            assert np.isclose(pair.score, expected[i, pos], atol=1e-5)
            unmapped.append(pair.unmapped)
    assert any(unmapped) == (backbone == "combined")  # only combined holds the colour histogram (no place)


def test_colour_hist_has_no_map_and_ensembles_name_their_part(demo_dir: Path, warm_demo_cache: Path) -> None:
    eng = _engine(demo_dir, warm_demo_cache)
    tasks = eng.validation().tasks
    left, cand = tasks.left_ids[0], tasks.right_ids[tasks.candidates[0, 0]]
    assert explainable_members("colour-hist") == []
    assert explainable_members("colour-hist+combined+efficientnet-lite0") == ["efficientnet-lite0", "combined"]
    with pytest.raises(NoSpatialMap, match="No spatial map for backbone colour-hist"):
        why(eng, "colour-hist", left, cand)
    pair = why(eng, "colour-hist+hog", left, cand)
    assert pair.member == "hog" and "one part of colour-hist+hog" in pair.note
    with pytest.raises(NoSpatialMap):
        why(eng, "hog", left, cand, member="colour-hist")


# ------------------------------------------------------------ deep backbones


@pytest.mark.slow
@pytest.mark.parametrize("backbone, grid", [("efficientnet-lite0", (7, 7)), ("dino-vits16", (14, 14))])
def test_deep_maps_with_random_weights(demo_dir: Path, backbone: str, grid: tuple[int, int]) -> None:
    """Seeded random weights, through the code path real weights take: one cell per cell of the model's own last
    feature map (its forward_features), cosines in [-1, 1]; for the average-pooled CNN the cells' weights make
    the map exact: sum(weight * grid) is the pair's cosine."""
    import torch

    eng = _engine(demo_dir, pretrained=False, device="cpu")
    tasks = eng.validation().tasks
    left, cand = tasks.left_ids[0], tasks.right_ids[tasks.candidates[0, 5]]
    pair = why(eng, backbone, left, cand)
    model = eng.backbone(backbone)
    with torch.inference_mode():
        features = model.model.forward_features(model.batch([model.prepare(read_rgb(eng, left))]).float())
    shape = tuple(features.shape[2:]) if features.ndim == 4 else (int(np.sqrt(features.shape[1] - 1)),) * 2
    assert pair.kind == "deep" and pair.left_map.grid.shape == pair.candidate_map.grid.shape == shape == grid
    for m in (pair.left_map, pair.candidate_map):
        assert np.isfinite(m.grid).all() and m.grid.min() >= -1 - 1e-6 and m.grid.max() <= 1 + 1e-6
        assert m.grid.std() > 0  # a map, not a constant
        x0, y0, x1, y1 = m.region
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and (x1 - x0) * (y1 - y0) < 1  # the centre crop
    assert (pair.left_map.image_id, pair.left_map.against) == (left, cand)
    if backbone == "efficientnet-lite0":
        for m in (pair.left_map, pair.candidate_map):
            assert np.isclose((m.weight * m.grid).sum(), pair.score, atol=1e-5)
    else:
        assert pair.left_map.weight is None and "patch tokens" in pair.note
    shown = render(eng, pair)
    assert shown.left.dtype == np.uint8 and shown.left.shape == np.asarray(read_rgb(eng, left)).shape


@pytest.mark.slow
def test_lite0_map_cells_average_to_the_cached_embedding(demo_dir: Path, reuse_backbones, tmp_path: Path) -> None:
    """With the packaged ImageNet weights: the map's cells, averaged, are the very vector the engine embeds and
    caches (its frozen, traced model), so the map is of the features the scores come from; centred like
    zero-shot, the weighted cells still sum to the score."""
    eng = _engine(demo_dir, tmp_path / "cache", device="cpu")
    tasks = eng.validation().tasks
    ids = [tasks.left_ids[1], tasks.right_ids[tasks.candidates[1, 2]]]
    backbone = eng.backbone("efficientnet-lite0")
    cells = backbone.feature_cells([read_rgb(eng, i) for i in ids])
    embedded = eng.embed(ids, "efficientnet-lite0")
    assert np.allclose(cells.cells.mean(axis=(1, 2)), embedded, atol=1e-4)
    mean = centre_of(eng, tasks, "efficientnet-lite0")
    pair = why(eng, "efficientnet-lite0", *ids, centre=mean)
    expected = ZeroShot("cosine").score(*eng.task_embeddings(tasks, "efficientnet-lite0"), tasks.candidates)[1, 2]
    assert np.isclose(pair.score, expected, atol=1e-4)
    assert np.isclose((pair.left_map.weight * pair.left_map.grid).sum(), pair.score, atol=1e-5)


@pytest.mark.slow
def test_the_crop_region_is_what_the_transform_keeps() -> None:
    """An image whose pixels encode their own coordinates, through the lite backbones' real transform: the
    corners of what comes out are the corners of the region (within the bicubic blur)."""
    from tll_core.backbones.compat import ensure_torchvision_ops
    from tll_core.backbones.deep import preprocess_transform

    ensure_torchvision_ops()  # as every builder does before torchvision is imported
    pp = BACKBONES["efficientnet-lite0"].preprocess
    w, h = 200, 245
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    coded = np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), np.zeros_like(xs)], -1).astype(np.uint8)
    out = preprocess_transform(pp)(Image.fromarray(coded)).numpy()  # [3, 224, 224] uint8
    steps = transform_steps(preprocess_transform(pp))
    assert [s for s, _ in steps] == ["resize", "crop"]
    x0, y0, x1, y1 = crop_region(steps, (w, h))
    assert abs(out[0, 112, 0] / 255 - x0) < 0.02 and abs(out[0, 112, -1] / 255 - x1) < 0.02
    assert abs(out[1, 0, 112] / 255 - y0) < 0.02 and abs(out[1, -1, 112] / 255 - y1) < 0.02
    assert crop_region([("resize", (224, 224))], (w, h)) == (0.0, 0.0, 1.0, 1.0)  # squash: the whole image


# ------------------------------------------------------------ overlays


def test_overlay_colours_the_region_and_greys_the_rest() -> None:
    image = Image.new("RGB", (100, 80), (200, 200, 200))
    grid = np.array([[0.0, 1.0]], dtype=np.float32)  # left half low, right half high
    smap = SimilarityMap(grid, "a", "b", region=(0.2, 0.0, 1.0, 1.0))
    out = overlay(image, smap, 0.0, 1.0, smooth=False)
    assert out.shape == (80, 100, 3) and out.dtype == np.uint8
    assert out[40, 5].tolist() == [102, 102, 102]  # outside the region: greyed
    low, high = out[40, 25].astype(int), out[40, 95].astype(int)
    assert low.tolist() == np.round(200 * 0.45 + VIRIDIS[0] * 0.55).astype(int).tolist()
    assert high.tolist() == np.round(200 * 0.45 + VIRIDIS[-1] * 0.55).astype(int).tolist()
    assert colormap(np.array([0.0, 1.0])).tolist() == [[68, 1, 84], [253, 231, 37]]
    with pytest.raises(TLLError, match="not finite"):
        overlay(image, SimilarityMap(np.array([[np.nan]]), "a", "b"), 0.0, 1.0)


def test_a_non_finite_map_is_refused(demo_dir: Path, warm_demo_cache: Path) -> None:
    """A centre of NaN (a broken embedding) never becomes a figure: one line instead."""
    eng = _engine(demo_dir, warm_demo_cache)
    tasks = eng.validation().tasks
    with pytest.raises(TLLError, match="not finite"):
        why(eng, "hog", tasks.left_ids[0], tasks.right_ids[0], centre=np.full(BACKBONES["hog"].dim, np.nan))


@pytest.mark.slow
def test_input_region_of_a_backbone_without_fixed_preprocessing() -> None:
    """timm's own eval transform (resize to size / crop_pct, centre crop), read from the Compose."""
    from tll_core.backbones.registry import create_backbone

    backbone = create_backbone("resnet50", pretrained=False)
    x0, y0, x1, y1 = backbone.input_region((200, 245))
    assert 0 < x0 < 0.2 and 0 < y0 < 0.2 and 0.8 < x1 < 1 and 0.8 < y1 < 1


# ------------------------------------------------------------ the page


def _why_app(query: dict[str, str], session: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.switch_page("pages/why.py").run()
    return at


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
def test_the_why_page_renders_descriptor_maps_and_takes_a_handed_candidate(demo_dir: Path, warm_demo_cache: Path) -> None:
    from studio.folder import open_engine as studio_engine
    from tll_core.analysis import ranked_task
    from tll_core.selection import Selection

    studio_engine.clear()
    at = _why_app({"backbone": "combined", "method": "zero-shot", "options": "[]"})
    _ok(at)
    assert [t.value for t in at.title] == ["Why this match?"]
    images = at.get("imgs") or at.get("image")
    assert len(images) == 6  # two panels: two overlays and a colour bar each
    sel: Selection = at.session_state["selection"]
    eng = Engine.open(at.session_state["data_folder"])
    tasks, _ = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
    scores = eng.score(tasks, sel.backbone, sel.to_method())
    task = ranked_task(tasks, scores, 0)
    handed = task.candidates[7]  # another page hands a right over by name
    at = _why_app({"backbone": "combined", "method": "zero-shot", "options": "[]"}, {"why_candidate": handed.name})
    _ok(at)
    picker = at.main.selectbox[-1]
    assert picker.label.startswith("Candidate (by rank") and picker.value == 7
    assert at.query_params["candidate"] in (handed.name, [handed.name])  # and a link reopens it


@pytest.mark.slow
def test_the_why_page_on_the_default_recipe_maps_its_deep_part(warm_recipe_cache: Path, reuse_backbones) -> None:
    """The default recipe (lite0-stages-views+combined): the map explains its first deep part, with real weights."""
    from studio.folder import open_engine as studio_engine
    from tll_core.recipes import default_recipe

    recipe = default_recipe()
    members = explainable_members(recipe.backbone)
    if not members or BACKBONES[members[0]].needs_weights is False:
        pytest.skip("the default recipe here has no deep part (the lite packages are not installed)")
    studio_engine.clear()
    at = _why_app({})
    _ok(at)
    assert at.main.selectbox[1].label == "Explain with" and at.main.selectbox[1].value == members[0]
    assert len(at.get("imgs") or at.get("image")) == 6
    assert any(f"one part of {recipe.backbone}" in c.value.replace("\\", "") for c in at.caption)  # md-escaped
