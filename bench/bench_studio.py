"""Studio timings (server time of a script run, measured with streamlit's AppTest), side by side in one run.

    .venv/bin/python bench/bench_studio.py [--data ../shared/tll-dev]

1. First start on the demo with an empty cache: demo written, embedded, scored → an interactive Overview.
2. On the data folder with warm caches: a rerun of Ranked candidates after "next ▶" (median of 10), and a
   switch to each page (after a first visit that fills the caches).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["pages/overview.py", "pages/ranked.py", "pages/failures.py", "pages/compare.py", "pages/embedding_map.py",
         "pages/train.py", "pages/submission.py"]


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    args = parser.parse_args()
    os.environ["TLL_CACHE_DIR"] = tempfile.mkdtemp(prefix="tll-bench-cache-")
    os.environ.pop("TLL_DATA", None)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    cold = timed(at.run)
    assert not at.exception, at.exception
    print(f"first start on the demo, empty cache → interactive Overview: {cold:.1f} s (target < 60 s)")

    if (args.data / "train.csv").exists():
        os.environ["TLL_DATA"] = str(args.data.resolve())
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    first = timed(at.run)
    print(f"\ndata: {os.environ.get('TLL_DATA', 'demo')}; first Overview (embeds what the cache lacks): {first:.1f} s")
    for page in PAGES:  # first visits fill the caches
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
    print("page switch with warm caches (server time):")
    for page in PAGES:
        t = timed(lambda: at.switch_page(page).run())
        print(f"  {page:26} {t * 1000:7.0f} ms")
    at.switch_page("pages/ranked.py").run()
    times = []
    for _ in range(10):
        times.append(timed(lambda: at.button[1].click().run()))  # next ▶
        assert not at.exception, at.exception
    print(f"Ranked candidates, 'next ▶' rerun: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (target < 300 ms)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
