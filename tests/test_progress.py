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
