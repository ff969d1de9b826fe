import numpy as np
import pytest
from scipy.stats import binomtest

from tll_core.evaluation.significance import mcnemar_exact
from tll_core.analysis import FAILURE_SORTS, compare, failure_ranges, failures, pca_2d, project_2d, ranked_task, selected_points
from tll_core.selection import Selection
from tll_core.evaluation.tasks import TaskSet


def small_tasks(n: int = 6) -> TaskSet:
    rng = np.random.default_rng(0)
    candidates = np.stack([np.r_[i, rng.choice(np.delete(np.arange(n * 8), i), 19, replace=False)] for i in range(n)])
    return TaskSet("t", tuple(f"l{i}" for i in range(n)), tuple(f"L/{i}" for i in range(n)),
                   tuple(f"r{j}" for j in range(n * 8)), tuple(f"R/{j}" for j in range(n * 8)),
                   candidates, np.zeros(n, dtype=np.int64))


def test_ranked_task_orders_by_score_and_marks_the_truth() -> None:
    tasks = small_tasks()
    scores = np.tile(np.linspace(0, 1, 20), (6, 1)).astype(np.float32)  # candidate 19 best, the truth (0) worst
    task = ranked_task(tasks, scores, 2)
    assert [c.position for c in task.candidates][:3] == [19, 18, 17]
    assert task.truth_rank == 20 and task.candidates[-1].is_truth and task.candidates[-1].name == "r2"
    assert [c.position for c in task.in_original_order()] == list(range(20))


def test_failures_are_outside_the_top_two_worst_first() -> None:
    tasks = small_tasks()
    scores = np.zeros((6, 20), dtype=np.float32)
    scores[:, 0] = [1.0, 0.5, 0.5, -1, 0.9, 0.2]  # truth scores
    scores[:, 1] = 0.8
    scores[:, 2] = 0.7
    found = failures(tasks, scores)
    assert [f.index for f in found] == [3, 5, 1, 2]  # 3: rank 20; 5: rank 3 with a larger margin than 1 and 2
    assert found[0].truth_rank == 20 and len(found[0].beaten_by) == 19
    assert found[1].beaten_by == (1, 2) and found[1].margin == pytest.approx(0.6)
    assert [f.index for f in failures(tasks, scores, max_margin=0.35)] == [1, 2]
    assert failures(tasks, scores, min_rank=19, max_rank=20)[0].index == 3


def _six_failures() -> tuple[TaskSet, np.ndarray]:
    """Eight lefts, six of them failures with distinct ranks, margins and truth scores (truth at position 0)."""
    tasks = small_tasks(8)
    scores = np.tile(-np.arange(20, dtype=np.float32), (8, 1))  # position 1 scores -1, 2 scores -2, ...
    scores[:, 1] += np.arange(8, dtype=np.float32) * 0.1  # a different best score per left
    scores[:, 0] = [0.5 - k for k in (3, 1, 9, 4, 2, 20, 3, 6)]  # the truth ranks exactly these
    return tasks, scores


def test_failures_carry_the_truth_score_and_sort_each_way() -> None:
    tasks, scores = _six_failures()
    truth = scores[:, 0]
    margin = scores.max(axis=1) - truth
    found = {f.index: f for f in sorted(failures(tasks, scores), key=lambda f: f.index)}
    assert sorted(found) == [0, 2, 3, 5, 6, 7]  # the lefts ranked 1 and 2 are hits
    for i, f in found.items():
        assert f.truth_score == pytest.approx(truth[i]) and f.margin == pytest.approx(margin[i])
    by = {sort: [f.index for f in failures(tasks, scores, sort=sort)] for sort in FAILURE_SORTS}
    assert by["worst rank first"] == [5, 2, 7, 3, 6, 0]  # ranks 20, 9, 6, 4, then 3 and 3 by margin (6 > 0)
    assert by["largest margin"] == sorted(found, key=lambda i: -margin[i])
    assert by["smallest margin"] == sorted(found, key=lambda i: margin[i])
    assert by["lowest truth score"] == sorted(found, key=lambda i: truth[i])  # 0 and 6 tie (rank 3 both): task order
    assert by["task order"] == [0, 2, 3, 5, 6, 7]
    assert failures(tasks, scores) == failures(tasks, scores, sort=FAILURE_SORTS[0])
    with pytest.raises(ValueError, match="unknown failure order"):
        failures(tasks, scores, sort="random")


def test_failures_filter_by_rank_margin_truth_score_and_lefts() -> None:
    tasks, scores = _six_failures()
    truth = scores[:, 0]
    margin = scores.max(axis=1) - truth
    idx = lambda **kw: sorted(f.index for f in failures(tasks, scores, **kw))  # noqa: E731
    assert idx(min_rank=4, max_rank=9) == [2, 3, 7]
    lo, hi = float(margin[3]), float(margin[2])  # closed range: both ends kept
    assert idx(min_margin=lo, max_margin=hi) == [i for i in [0, 2, 3, 5, 6, 7] if lo <= margin[i] <= hi]
    assert idx(min_margin=lo) == [i for i in [0, 2, 3, 5, 6, 7] if margin[i] >= lo]
    assert idx(min_truth_score=-8.5, max_truth_score=-3.5) == [2, 3, 7]  # truth scores -8.5, -3.5, -5.5
    assert idx(max_truth_score=-8.6) == [5]
    assert idx(lefts=("l2", "l5", "l1", "nobody")) == [2, 5]  # l1 is a hit: never a failure
    assert idx(lefts=()) == [] and idx(lefts=None) == [0, 2, 3, 5, 6, 7]
    assert idx(min_rank=4, min_truth_score=-6, lefts=["l3", "l7", "l2"]) == [3, 7]
    ranges = failure_ranges(failures(tasks, scores))
    assert ranges.margin == pytest.approx((margin[[0, 2, 3, 5, 6, 7]].min(), margin[[0, 2, 3, 5, 6, 7]].max()))
    assert ranges.truth_score == pytest.approx((-19.5, -2.5))
    assert failure_ranges([]).margin == (0.0, 0.0)


def test_mcnemar_matches_the_exact_binomial_test() -> None:
    for b, c in [(3, 10), (0, 7), (12, 12), (1, 0)]:
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert mcnemar_exact(0, 0) == 1.0


def test_compare_slices() -> None:
    tasks = small_tasks(4)
    good = np.zeros((4, 20)); good[:, 0] = 1
    bad = np.zeros((4, 20)); bad[:, 0] = -1
    mixed = np.where(np.arange(4)[:, None] < 2, good, bad)
    c = compare(tasks, good, mixed)
    assert c.a_only == (2, 3) and c.b_only == () and c.both_right == (0, 1) and c.both_wrong == ()


@pytest.mark.slow
def test_projections_are_2d_and_deterministic() -> None:
    x = np.random.default_rng(0).normal(size=(60, 12)).astype(np.float32)
    assert project_2d(x, "pca").shape == (60, 2)
    a, b = project_2d(x, "umap", seed=0), project_2d(x, "umap", seed=0)
    assert a.shape == (60, 2) and np.allclose(a, b)


def test_selected_points_reads_plotly_events() -> None:
    """Points come back as (curve_number, point_index) with customdata as plotly sends numpy arrays (a base64
    block, a dict — the box-selection crash of issue 11); the trace table maps them to map points."""
    traces = [[0, 2, 4], [1, 3]]  # e.g. the lefts trace and the rights trace
    blob = {"dtype": "i8", "bdata": "BAAAAAAAAAA="}
    event = {"selection": {"points": [{"curve_number": 1, "point_index": 1, "customdata": blob},
                                      {"curve_number": 0, "point_index": 2, "customdata": blob},
                                      {"curve_number": 1, "point_index": 1},  # twice: kept once
                                      {"curve_number": 2, "point_index": 0},  # the pair-lines trace: ignored
                                      {"curve_number": 0, "point_index": 7},  # out of range: ignored
                                      {"curve_number": "0", "point_index": 1}, "junk"]}}
    assert selected_points(event, traces) == [3, 4]
    assert selected_points({"selection": {"points": []}}, traces) == [] and selected_points(None, traces) == []
    assert selected_points({"selection": {"points": "x"}}, traces) == []


def test_selection_round_trips_through_query_params() -> None:
    sel = Selection(backbone="hog", method="adaptation", rerank="sinkhorn", options=(("temperature", 0.1),), seed=3)
    assert Selection.from_query(sel.to_query()) == sel
    assert Selection().to_query() == {}
    junk = {"backbone": "../../etc", "method": "magic", "metric": "x", "val_fraction": "2", "seed": "-1", "options": "{not json"}
    assert Selection.from_query(junk) == Selection()


def test_query_options_out_of_range_fall_back_to_the_defaults() -> None:
    import json

    for bad in ([["temperature", 0]], [["epochs", 2.5]], [["lr", "nan"]], [["holdout", 2]]):
        sel = Selection.from_query({"method": "adaptation", "options": json.dumps(bad)})
        assert sel.options == Selection(method="adaptation").options, bad
    ok = Selection.from_query({"method": "adaptation", "options": json.dumps([["epochs", 3.0]])})
    assert ok.options == (("epochs", 3),)


def _scores_with_truth_ranks(ranks: list[int]) -> np.ndarray:
    """Scores for tasks whose truth (candidate 0) lands at the given ranks, ties broken against it."""
    scores = np.tile(np.linspace(1.0, 0.05, 20), (len(ranks), 1)).astype(np.float32)  # candidate c scores 1 - c/20
    for i, rank in enumerate(ranks):
        scores[i, 0] = scores[i, rank - 1] if rank > 1 else 2.0  # a tie with the rank-th best: rank `rank`
    return scores


def test_hits_misses_and_the_next_miss() -> None:
    from tll_core.analysis import hits, misses, next_miss

    tasks = small_tasks(6)
    scores = _scores_with_truth_ranks([1, 3, 2, 20, 2, 5])
    assert hits(tasks, scores).tolist() == [True, False, True, False, True, False]
    assert hits(tasks, scores, k=5).tolist() == [True, True, True, False, True, True]
    assert misses(tasks, scores) == (1, 3, 5) and misses(tasks, scores, k=20) == ()
    assert [next_miss(tasks, scores, after=i) for i in range(6)] == [1, 3, 3, 5, 5, 1]  # wraps to the first
    assert next_miss(tasks, scores, after=0, k=20) is None
    among = [0, 2, 3, 4]  # the lefts picked on the map: only their misses count
    assert [next_miss(tasks, scores, after=i, among=among) for i in range(6)] == [3, 3, 3, 3, 3, 3]
    assert next_miss(tasks, scores, after=0, among=[0, 2]) is None


def test_the_truth_and_what_beat_it_match_the_failure() -> None:
    tasks = small_tasks(6)
    scores = _scores_with_truth_ranks([1, 3, 2, 20, 2, 5])
    for failure in failures(tasks, scores):
        task = ranked_task(tasks, scores, failure.index)
        assert task.truth.is_truth and task.truth.position == 0 and task.truth.image_id == tasks.right_ids[failure.index]
        assert task.truth.score == pytest.approx(scores[failure.index, 0])
        assert tuple(c.position for c in task.beating_truth) == failure.beaten_by  # a tie counts against the truth
        assert len(task.beating_truth) == failure.truth_rank - 1
    assert ranked_task(tasks, scores, 0).beating_truth == ()
    unknown = TaskSet("test", tasks.left_names, tasks.left_ids, tasks.right_names, tasks.right_ids,
                      tasks.candidates, np.full(6, -1))
    assert ranked_task(unknown, scores, 0).truth is None and ranked_task(unknown, scores, 0).beating_truth == ()


def test_comparison_slices_partition_the_lefts() -> None:
    tasks = small_tasks(6)
    a = _scores_with_truth_ranks([1, 3, 2, 20, 2, 5])
    b = _scores_with_truth_ranks([4, 1, 2, 1, 9, 6])
    slices = compare(tasks, a, b).slices
    assert list(slices) == ["A right, B wrong", "B right, A wrong", "both wrong", "both right"]
    assert slices == {"A right, B wrong": (0, 4), "B right, A wrong": (1, 3), "both wrong": (5,), "both right": (2,)}


def test_map_points_pair_each_left_with_its_truth_and_back() -> None:
    from tll_core.analysis import map_points

    tasks = small_tasks(4)  # left i's truth is right i (candidate 0); 32 rights
    points = map_points(tasks)
    assert len(points) == 4 + 32 and points.sides[:4] == ("left",) * 4 and points.sides[4] == "right"
    assert points.names[0] == "l0" and points.names[4 + 5] == "r5" and points.image_ids[4 + 5] == "R/5"
    assert points.partners[:4] == (4, 5, 6, 7) and points.partners[4:8] == (0, 1, 2, 3)
    assert set(points.partners[8:]) == {None}  # foils belong to no left
    unknown = TaskSet("test", tasks.left_names, tasks.left_ids, tasks.right_names, tasks.right_ids,
                      tasks.candidates, np.full(4, -1))
    assert set(map_points(unknown).partners) == {None}


def test_map_groups_by_side_or_top_two_hit() -> None:
    from tll_core.analysis import map_groups

    tasks = small_tasks(3)
    scores = _scores_with_truth_ranks([1, 7, 2])
    assert map_groups(tasks, scores).tolist() == ["left"] * 3 + ["right"] * 24
    assert map_groups(tasks, scores, "hit / miss").tolist() == ["hit", "miss", "hit"] + ["right"] * 24
    unknown = TaskSet("test", tasks.left_names, tasks.left_ids, tasks.right_names, tasks.right_ids,
                      tasks.candidates, np.full(3, -1))
    assert map_groups(unknown, scores, "hit / miss").tolist()[:3] == ["left"] * 3  # no truth: by side
    with pytest.raises(ValueError, match="colouring"):
        map_groups(tasks, scores, "rainbow")


def _exact_pca(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    components = vt[:2] * np.sign(vt[np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]
    return centred @ components.T


@pytest.mark.parametrize("shape", [(300, 500), (500, 120), (20, 7)])
def test_randomized_pca_matches_the_exact_projection(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    n, d = shape
    x = rng.normal(size=(n, d)) + 8 * rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) / np.sqrt(d)
    got = pca_2d(x.astype(np.float32), seed=3)
    np.testing.assert_allclose(got, _exact_pca(x), rtol=0, atol=1e-3 * np.abs(got).max())
    np.testing.assert_array_equal(pca_2d(x.astype(np.float32), seed=3), got)  # deterministic
    assert got.dtype == np.float32 and got.shape == (n, 2)


def test_pca_of_a_single_feature_is_a_flat_second_axis() -> None:
    got = pca_2d(np.arange(5, dtype=np.float32)[:, None])
    assert got.shape == (5, 2) and not got[:, 1].any() and np.ptp(got[:, 0]) == pytest.approx(4)
