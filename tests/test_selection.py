"""What the studio's pages lay out, computed in tll_core: the leaderboard's and compare page's selections
(from the register: a new part shows up with no studio edit), the Train page's options and learned matchers,
and the leaderboard's rows under both protocols."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import image, make_kaggle
from tll_core import selection as selection_module
from tll_core.recipes import Recipe
from tll_core.backbones.registry import BACKBONES
from tll_core.engine import Engine, Method
from tll_core.matchers import learned_matchers, matcher_part
from tll_core.evaluation.metrics import metric_names
from tll_core.register import REGISTER, Part
from tll_core.errors import TLLError
from tll_core.selection import (Selection, comparison_choices, default_options, leaderboard_rows,
                                leaderboard_selections, preview_of, preview_while_computing, settable_options)

WEIGHT_FREE = [name for name, cfg in BACKBONES.items() if not cfg.needs_weights]


def test_leaderboard_selections_are_the_selection_then_each_weight_free_baseline() -> None:
    sel = Selection(backbone="hog", method="adaptation", rerank="sinkhorn", options=(("epochs", 3),), split="test", seed=4)
    found = leaderboard_selections(sel)
    assert found[0] == replace(sel, split="validation")
    assert [s.backbone for s in found[1:]] == WEIGHT_FREE
    assert all((s.method, s.metric, s.rerank, s.options, s.split, s.seed) == ("zero-shot", "cosine", "none", (), "validation", 4)
               for s in found[1:])
    baseline = found[1]  # the selection is itself a baseline: listed once
    assert leaderboard_selections(baseline) == found[1:]


def test_comparison_choices_follow_the_register() -> None:
    sel = Selection(backbone="hog", method="adaptation", metric="cosine", rerank="sinkhorn", options=(), split="test")
    choices = comparison_choices(sel)
    labels = [c.label for c in choices]
    assert choices[0] == replace(sel, split="validation") and len(set(labels)) == len(labels)
    assert all(c.split == "validation" for c in choices)
    assert {c.rerank for c in choices if c.method == "adaptation" and c.backbone == "hog"} == set(REGISTER.names("rerank"))
    assert {c.metric for c in choices if c.method == "zero-shot" and c.backbone == "hog"} == set(metric_names())
    assert {c.backbone for c in choices if c.method == "zero-shot"} == {"hog", *WEIGHT_FREE}
    assert {c.method for c in choices} == set(REGISTER.names("matcher"))
    REGISTER.add(Part("rerank", "test-only-rerank", build=lambda: None))  # a new re-ranker: offered at once
    try:
        assert "test-only-rerank" in {c.rerank for c in comparison_choices(sel)}
    finally:
        REGISTER.remove("rerank", "test-only-rerank")


def test_settable_options_leave_the_metric_to_the_selection() -> None:
    assert settable_options("zero-shot") == ()  # metric and centre are the selection's own fields
    adaptation = [spec.name for spec in settable_options("adaptation")]
    assert adaptation == [spec.name for spec in matcher_part("adaptation").options] and "temperature" in adaptation


def test_learned_matchers_are_those_that_fit() -> None:
    assert learned_matchers() == ("adaptation", "siamese", "pair-classifier")

    @dataclass(frozen=True)
    class Fixed:  # a matcher with nothing to learn
        learns = False

    REGISTER.add(Part("matcher", "test-only-fixed", Fixed, metric="cosine"))
    try:
        assert "test-only-fixed" not in learned_matchers() and "test-only-fixed" in REGISTER.names("matcher")
    finally:
        REGISTER.remove("matcher", "test-only-fixed")


def test_leaderboard_rows_are_both_protocols_on_the_validation_split(tmp_path: Path) -> None:
    eng = Engine.open(make_kaggle(tmp_path / "data", n_pairs=24), cache_dir=tmp_path / "cache")
    sel = Selection(backbone="colour-hist", method="zero-shot", metric="cosine", rerank="none", options=(),
                    split="test", val_fraction=0.5, seed=1)
    on_tasks, on_gallery = leaderboard_rows(eng, sel)
    [expected] = eng.evaluate(["colour-hist"], methods=[sel.to_method()], val_fraction=0.5, seed=1)
    assert on_tasks == expected  # the validation split, whatever the selection's split
    assert (on_tasks.protocol, on_gallery.protocol) == ("tasks", "gallery")
    validation = len(eng.validation(0.5, 1).validation)
    assert on_gallery.gallery == on_gallery.n == on_tasks.n == validation  # every validation right is a candidate
    assert 0 <= on_gallery.recall_at_1 <= on_gallery.recall_at_5 <= on_gallery.recall_at_10 <= 1
    assert (on_gallery.backbone, on_gallery.method) == (on_tasks.backbone, on_tasks.method) == ("colour-hist", "zero-shot")


@pytest.mark.slow
def test_leaderboard_rows_fit_a_learned_matcher_once(tmp_path: Path) -> None:
    eng = Engine.open(make_kaggle(tmp_path / "data", n_pairs=64), cache_dir=tmp_path / "cache")
    sel = Selection(backbone="colour-hist", method="adaptation", rerank="none", options=(("epochs", 2),))
    on_tasks, on_gallery = leaderboard_rows(eng, sel)
    assert eng.trained == 1  # the gallery takes the tasks' fitted matcher back from the store
    assert on_tasks.method == on_gallery.method == Method("adaptation", options=(("epochs", 2),)).label
    assert on_gallery.gallery == len(eng.validation(sel.val_fraction, sel.seed).validation)


def test_rerank_options_ride_in_the_url_and_reach_the_method() -> None:
    sel = Selection(backbone="hog", method="zero-shot", rerank="sinkhorn", options=(), rerank_options=(("tau", 0.1),))
    assert Selection.from_query(sel.to_query()) == sel
    assert sel.to_method().rerank_options == (("tau", 0.1),) and "sinkhorn(tau=0.1)" in sel.label
    # out of range, unknown to this re-ranker, or malformed: the re-ranker's defaults
    for text in ('[["tau", 0]]', '[["k", 3]]', "not json"):
        params = {"backbone": "hog", "rerank": "sinkhorn", "rerank_options": text}
        assert Selection.from_query(params).rerank_options == ()
    # the options belong to their re-ranker: another one in the URL does not take them
    assert Selection.from_query({"rerank": "csls", "rerank_options": '[["tau", 0.1]]'}).rerank_options == ()


def test_chosen_method_is_any_backbone_matcher_metric_and_re_ranker() -> None:
    from tll_core.selection import chosen_method

    sel = Selection(split="test", seed=7)
    chosen = chosen_method(sel, "hog+tiny-image", "siamese", "manhattan", "csls")
    assert (chosen.backbone, chosen.method, chosen.metric, chosen.rerank) == ("hog+tiny-image", "siamese", "manhattan", "csls")
    assert chosen.split == "validation" and chosen.seed == 7 and chosen.rerank_options == ()
    assert chosen.options == default_options("siamese")
    for bad in (("nope", "zero-shot", "cosine", "none"), ("hog", "nope", "cosine", "none"),
                ("hog", "zero-shot", "nope", "none"), ("hog", "zero-shot", "cosine", "nope")):
        with pytest.raises(TLLError, match="unknown"):
            chosen_method(sel, *bad)


def test_centring_rides_in_the_url_and_reaches_the_method() -> None:
    from tll_core.selection import Selection

    sel = Selection(method="zero-shot", options=(), centre=False)
    assert sel.to_query()["centre"] == "false" and Selection.from_query(sel.to_query()) == sel
    assert dict(sel.to_method().options)["centre"] is False and "centre" not in Selection(method="zero-shot").to_query()
    for bad in ("False", "0", "no", ""):
        assert Selection.from_query({"centre": bad}).centre is True  # anything else keeps the default


def test_the_url_carries_only_what_applies_to_the_selection() -> None:
    """A metric or centring left over from zero-shot, re-ranking options without a re-ranker, a validation
    fraction on the test split: not in the URL (stale parameters would mislead whoever opens the link)."""
    learned = Selection(backbone="hog", method="adaptation", metric="euclidean", centre=False, rerank="none",
                        options=(), val_fraction=0.5)
    query = learned.to_query()
    assert "metric" not in query and "centre" not in query and query["val_fraction"] == "0.5"
    zero = Selection(backbone="hog", method="zero-shot", metric="euclidean", centre=False, options=(), split="test",
                     val_fraction=0.5, rerank="none")
    query = zero.to_query()
    assert (query["metric"], query["centre"], query["split"]) == ("euclidean", "false", "test")
    assert "val_fraction" not in query
    reopened = Selection.from_query(learned.to_query())
    assert reopened.to_method() == learned.to_method() and reopened.label == learned.label  # the same method


def test_the_leaderboard_scores_the_selection_at_once_and_the_baselines_when_asked() -> None:
    """Only the selection (and your own models, and what is kept) is scored on a first view; each weight-free
    baseline waits, unless it is kept already."""
    from tll_core.selection import leaderboard_now_and_later, leaderboard_selections

    sel = Selection(backbone="combined")
    every = leaderboard_selections(sel)
    now, later = leaderboard_now_and_later(sel, lambda c: False)
    assert now == every[:1] and later == every[1:] and later
    kept = later[0]
    now, later = leaderboard_now_and_later(sel, lambda c: c == kept)
    assert now == [every[0], kept] and kept not in later and len(now) + len(later) == len(every)


def _recipe_with_a_preview(monkeypatch: pytest.MonkeyPatch) -> tuple[Recipe, Recipe]:
    """A weight-free default recipe (hog) whose preview is another (colour-hist): the preview logic, on
    backbones that embed in milliseconds."""
    preview = Recipe("colour-hist", Method.zero_shot(rerank="none"))
    recipe = Recipe("hog", Method.zero_shot(rerank="sinkhorn"), preview=preview)
    monkeypatch.setattr(selection_module, "_default_recipe", lambda: recipe)
    return recipe, preview


def test_the_preview_of_the_default_selection_is_its_recipes_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe, preview = _recipe_with_a_preview(monkeypatch)
    default = Selection()
    assert default.backbone == recipe.backbone
    shown = preview_of(default)
    assert shown is not None and shown.backbone == preview.backbone and shown.to_method() == preview.method
    test_split = replace(default, split="test")
    assert preview_of(test_split) == replace(shown, split="test")  # the same split as the selection's
    for chosen in (replace(default, backbone="colour-hist"), replace(default, seed=3), replace(default, rerank="none")):
        assert preview_of(chosen) is None  # any choice of the user's is shown as it is
    monkeypatch.setattr(selection_module, "_default_recipe", lambda: replace(recipe, preview=None))
    assert preview_of(Selection()) is None  # a recipe without a preview


def test_a_preview_is_shown_only_while_the_images_are_not_embedded(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    recipe, preview = _recipe_with_a_preview(monkeypatch)
    data = make_kaggle(tmp_path / "data", n_pairs=24)
    eng = Engine.open(data, cache_dir=tmp_path / "cache")
    sel = Selection()
    tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
    images = [*(p.left_id for p in fit), *(p.right_id for p in fit), *tasks.left_ids, *tasks.right_ids]
    assert preview_while_computing(eng, sel) == preview_of(sel)
    eng.embed(images[: len(images) // 2], "hog")
    assert not eng.cached(images, "hog") and eng.cached(images[: len(images) // 2], "hog")
    assert preview_while_computing(eng, sel) == preview_of(sel)  # half of them: still a preview
    eng.embed(images, "hog")
    assert eng.cached(images, "hog") and preview_while_computing(eng, sel) is None
    assert not eng.cached(images, "hog+colour-hist")  # every part: colour-hist was never embedded
    # a new process on the same cache (nothing in memory): the folder's index knows the hashes, nothing is read
    again = Engine.open(data, cache_dir=tmp_path / "cache")
    assert again.cached(images, "hog") and preview_while_computing(again, sel) is None
    image(data / fit[0].left_id, seed=99)  # an image rewritten: its vector is not the cached one any more
    assert not Engine.open(data, cache_dir=tmp_path / "cache").cached(images, "hog")
    assert again.cached([fit[1].right_id], "hog")
    (data / fit[1].right_id).unlink()  # an image gone since the folder was loaded: not cached, and no error
    assert not again.cached([fit[1].right_id], "hog")
