"""Studio timings (server time of a script run, measured with streamlit's AppTest), side by side in one run.

    .venv/bin/python bench/bench_studio.py [--data ../shared/tll-dev]

1. First start on the demo with an empty cache: demo written, embedded, scored → an interactive Overview.
2. On the data folder: the first draw of the embedding map (warm embeddings: projection, figure, thumbnails),
   then with warm caches a rerun of each page (what any widget change costs, median of 5), a switch to each
   page, and Ranked candidates after "next ▶" (median of 10).
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
PAGES = ["pages/overview.py", "pages/ranked.py", "pages/failures.py", "pages/compare.py", "pages/why.py",
         "pages/embedding_map.py", "pages/train.py", "pages/submission.py"]


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(data: Path) -> dict[str, float]:
    """The studio figures, in seconds."""
    os.environ["TLL_CACHE_DIR"] = tempfile.mkdtemp(prefix="tll-bench-cache-")
    os.environ.pop("TLL_DATA", None)
    from streamlit.testing.v1 import AppTest

    out: dict[str, float] = {}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    out["first start on the demo"] = timed(at.run)
    assert not at.exception, at.exception
    if (data / "train.csv").exists():
        os.environ["TLL_DATA"] = str(data.resolve())
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    out["first overview"] = timed(at.run)
    for page in PAGES:  # first visits fill the caches
        took = timed(lambda: at.switch_page(page).run())
        assert not at.exception, (page, at.exception)
        if page == "pages/embedding_map.py":
            out["first map draw"] = took
    for page in PAGES:
        out[f"switch to {page}"] = timed(lambda: at.switch_page(page).run())
        assert not at.exception, (page, at.exception)  # a figure of an error page is no figure
        out[f"rerun {page}"] = statistics.median(timed(at.run) for _ in range(5))
        assert not at.exception and at.title, (page, at.exception)
    at.switch_page("pages/ranked.py").run()
    times = []
    for _ in range(10):
        times.append(timed(lambda: at.main.button[1].click().run()))  # next ▶
        assert not at.exception, at.exception
    out["next left median"] = statistics.median(times)
    out["next left max"] = max(times)
    os.environ.pop("TLL_DATA", None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    args = parser.parse_args()
    m = measure(args.data)
    print(f"first start on the demo, empty cache → interactive Overview: {m['first start on the demo']:.1f} s (target < 60 s)")
    print(f"first Overview on {args.data} (embeds what the cache lacks): {m['first overview']:.1f} s")
    print(f"first draw of the embedding map (warm embeddings): {m['first map draw']:.2f} s")
    print("with warm caches (server time): page switch, page rerun (target < 300 ms)")
    for page in PAGES:
        print(f"  {page:26} {m[f'switch to {page}'] * 1000:7.0f} ms {m[f'rerun {page}'] * 1000:7.0f} ms")
    print(f"Ranked candidates, 'next ▶' rerun: median {m['next left median'] * 1000:.0f} ms, "
          f"max {m['next left max'] * 1000:.0f} ms (target < 300 ms)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
