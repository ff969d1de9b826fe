"""The progress line of long calls: rate measured from the first report, time left, epochs, stages."""
from tll_core.matchers import EpochReport
from tll_core.progress import ProgressMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_time_left_come_from_images_embedded_since_the_first_report() -> None:
    clock = Clock()
    meter = ProgressMeter("embedding", clock=clock)
    meter.images(400, 2000)  # 400 came from the cache at once: not counted in the rate
    assert meter.fraction == 0.2 and meter.text == "embedding: 400 / 2,000 images"
    clock.now += 10
    meter.images(600, 2000)  # 200 embedded in 10 s: 20 img/s, 1400 left: 70 s
    assert meter.text == "embedding: 600 / 2,000 images · 20.0 img/s · about 70 s left"
    clock.now += 10
    meter.images(700, 2000)  # 300 in 20 s: 15 img/s, 1300 left: 86.7 s
    assert meter.text.endswith("15.0 img/s · about 87 s left")
    clock.now += 5
    meter.images(2000, 2000)
    assert meter.fraction == 1.0 and meter.text == "embedding: 2,000 / 2,000 images"


def test_a_new_stage_restarts_the_rate_and_long_waits_read_in_minutes() -> None:
    clock = Clock()
    meter = ProgressMeter("embedding", clock=clock)
    meter.images(0, 1000)
    clock.now += 50
    meter.images(1000, 1000)
    meter.images(0, 1000)  # the next member of an ensemble: counted afresh
    clock.now += 10
    meter.images(10, 1000)  # 1 img/s: 990 s left
    assert meter.text.endswith("1.0 img/s · about 16 min 30 s left")


def test_epochs_say_which_of_at_most_how_many() -> None:
    meter = ProgressMeter()
    meter.epoch(EpochReport(epoch=18, epochs=60, train_loss=0.51234, holdout_top2=0.6))
    assert meter.fraction == 0.3
    assert meter.text == "training: epoch 18 of at most 60 · loss 0.5123 · held-back top-2 0.600"


def test_a_planned_job_is_one_bar_with_its_stages_and_one_time_left() -> None:
    """Two embedding passes and training: the fraction is of the whole job, the time left counts the later pass
    at the rate measured, and training (never measured yet) is named instead of guessed."""
    from tll_core.progress import EPOCH_SECONDS, Stage

    EPOCH_SECONDS.clear()
    clock = Clock()
    meter = ProgressMeter("scoring x", clock=clock)
    meter.expect((Stage("embedding", "a + b", 1000), Stage("embedding", "a + b, flip view", 1000),
                  Stage("training", "adaptation", 60)))
    meter.images(0, 1000)
    clock.now += 10
    meter.images(100, 1000)  # 10 img/s: 90 s left here, 100 s for the next pass
    assert meter.fraction == (0 + 0.1) / 3
    assert meter.text == ("scoring x: stage 1 of 3 · embedding (a + b): 100 / 1,000 images · 10.0 img/s"
                          " · about 3 min 10 s left, then training (adaptation)")  # both passes: 90 s + 100 s
    meter.images(1000, 1000)
    meter.images(0, 1000)  # the next pass
    clock.now += 10
    meter.images(100, 1000)
    assert meter.text.startswith("scoring x: stage 2 of 3 · embedding (a + b, flip view): 100 / 1,000")
    clock.now += 90
    meter.images(1000, 1000)
    meter.epoch(EpochReport(epoch=1, epochs=60, train_loss=1.0, holdout_top2=0.5))
    clock.now += 2
    meter.epoch(EpochReport(epoch=2, epochs=60, train_loss=0.9, holdout_top2=0.5))  # 2 s an epoch: 116 s at most
    assert meter.fraction == (2 + 2 / 60) / 3
    assert meter.text.startswith("scoring x: stage 3 of 3 · training (adaptation): epoch 2 of at most 60")
    assert meter.text.endswith("about 1 min 56 s left")
    assert EPOCH_SECONDS["adaptation"] == 2.0
    again = ProgressMeter("scoring y", clock=clock)  # training is known now: one time left for the whole job
    again.expect((Stage("embedding", "a + b", 1000), Stage("training", "adaptation", 60)))
    again.images(0, 1000)
    clock.now += 10
    again.images(500, 1000)  # 50 s left embedding + 60 x 2 s training
    assert again.text.endswith("50.0 img/s · about 2 min 10 s left in all")


def test_a_report_the_plan_did_not_foresee_is_shown_on_its_own() -> None:
    from tll_core.progress import Stage

    clock = Clock()
    meter = ProgressMeter("job", clock=clock)
    meter.expect((Stage("embedding", "a", 10),))
    meter.images(10, 10)
    meter.images(0, 40)  # another pass (the full gallery's images)
    assert meter.text == "job: 0 / 40 images" and meter.fraction == 0.0
    meter.images(40, 40)
    shown = meter.text
    meter.images(25, 25)  # a pass answered from memory at once: nothing to show, the line stays
    assert meter.text == shown


def test_a_burst_from_the_cache_in_the_middle_of_a_pass_soon_leaves_the_rate() -> None:
    """A submission's pass: the train images come from the cache at once, then the test images are embedded at
    50 img/s; the rate (and the time left) is the backbone's within RATE_WINDOW seconds, not the cache's."""
    from tll_core.progress import RATE_WINDOW

    clock = Clock()
    meter = ProgressMeter("embedding", clock=clock)
    meter.images(8, 6000)
    clock.now += 1
    meter.images(2000, 6000)  # 1992 from the cache in a second
    done = 2000
    for _ in range(int(2 * RATE_WINDOW)):
        clock.now += 1
        done += 50
        meter.images(done, 6000)
    assert meter.text.endswith(f"50.0 img/s · about {(6000 - done) // 50} s left")
