"""The studio's first minutes on real data, this checkout against an earlier one, side by side in one run.

    .venv/bin/python bench/bench_first_view.py [--data ../shared/tll-dev] [--baseline 9fc6915] [--skip-baseline]

For each checkout (the baseline is checked out into a temporary git worktree), in fresh processes with an empty
cache, server time of the studio's script runs (streamlit AppTest, default recipe):
1. first start on the demo → the Overview it lands on (demo written, embedded, fitted, scored);
2. first start on ``--data`` (``$TLL_DATA``) → the Overview, then a switch to Ranked candidates: the first view
   of a left beside its ranked candidates;
   When the studio opens on a preview of the default recipe (``studio/preview.py``), the script is rerun as
   the page's timer reruns it until it has switched to the default: the time until the default's view;
3. a warm restart on ``--data`` (a new process, the same cache) → the Overview: from the process's start (imports
   included) to a usable page.
The baseline defaults to the commit before issue 21 (the Overview computed every baseline row before drawing).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "9fc6915"

CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
sys.path.insert(0, os.getcwd())
from streamlit.testing.v1 import AppTest
out = {}
at = AppTest.from_file("app.py", default_timeout=3600)
first = t = time.perf_counter(); at.run(); out["overview"] = time.perf_counter() - t
assert not at.exception, at.exception
out["to usable"] = time.perf_counter() - start
if sys.argv[1] == "ranked":
    t = time.perf_counter(); at.switch_page("pages/ranked.py").run(); out["ranked"] = time.perf_counter() - t
    assert not at.exception, at.exception
    assert len(at.get("image")) >= 21, "Ranked drew no candidates"
    awaited = at.session_state["awaited"] if "awaited" in at.session_state else None
    while awaited is not None and at.session_state["selection"] != awaited.default:  # a preview: the page's timer
        time.sleep(1.0); at.run()
        assert not at.exception, at.exception
    out["default ready"] = time.perf_counter() - first  # from the first run, as the first Ranked view
print("RESULT " + json.dumps(out))
"""


def child(checkout: Path, cache: Path, data: Path | None, what: str) -> dict[str, float]:
    env = dict(os.environ, TLL_CACHE_DIR=str(cache))
    env.pop("TLL_DATA", None)
    if data is not None:
        env["TLL_DATA"] = str(data.resolve())
    done = subprocess.run([sys.executable, "-c", CHILD, what], cwd=checkout, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{checkout}: {what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def measure(checkout: Path, data: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tll-bench-first-") as tmp:
        demo = child(checkout, Path(tmp) / "demo-cache", None, "overview")
        cold = child(checkout, Path(tmp) / "data-cache", data, "ranked")
        warm = child(checkout, Path(tmp) / "data-cache", data, "overview")
    return {"demo": demo["overview"], "cold overview": cold["overview"], "cold ranked": cold["ranked"],
            "cold first ranked": cold["overview"] + cold["ranked"],
            "cold default ready": cold["default ready"],
            "warm restart": warm["to usable"],
            "warm overview run": warm["overview"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    results = {"this checkout": measure(ROOT, args.data)}
    if not args.skip_baseline:
        with tempfile.TemporaryDirectory(prefix="tll-bench-base-") as tmp:
            base = Path(tmp) / "base"
            subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                           capture_output=True)
            try:
                results[f"baseline {args.baseline}"] = measure(base, args.data)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    rows = [("first start on the demo → Overview (target ≤ 15 s)", "demo"),
            (f"first Overview on {args.data.name}, empty cache", "cold overview"),
            ("  then Ranked candidates", "cold ranked"),
            ("first Ranked view (Overview + Ranked), empty cache", "cold first ranked"),
            ("  the default recipe's Ranked view (a preview first: switched to by itself)", "cold default ready"),
            ("warm restart → usable Overview, process start included (target ≤ 5 s)", "warm restart"),
            ("  of which the Overview's script run", "warm overview run")]
    names = list(results)
    print(f"{'':72}" + "".join(f"{n:>24}" for n in names) + ("  ratio" if len(names) == 2 else ""))
    for label, key in rows:
        values = [results[n][key] for n in names]
        ratio = f"  {values[0] / values[1]:.2f}" if len(values) == 2 and values[1] else ""
        print(f"{label:72}" + "".join(f"{v:>22.1f} s" for v in values) + ratio)


if __name__ == "__main__":
    main()
