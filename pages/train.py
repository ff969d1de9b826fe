"""Train: fit a learned matcher with its options, watch the curves; the result becomes the selection.

The matchers and their option widgets come from the register (a new matcher or option needs no edit here);
the matcher is fitted once and hands back its training curve, which is kept for this selection.
"""
from dataclasses import replace

import pandas as pd
import streamlit as st

from studio.entry import enter
from studio.state import apply, data_folder, device, engine, remember_curve, scored, selection, trained_curve
from studio.widgets import md, option_input, show_error
from tll_core.errors import TLLError
from tll_core.matchers import EpochReport, TrainingCurve, learned_matchers, matcher_part
from tll_core.metrics import evaluate_scores
from tll_core.selection import default_options, settable_options

enter()  # run directly (a deep link on a fresh server): app.py runs instead


def curve_frame(curve: TrainingCurve) -> pd.DataFrame:
    return pd.DataFrame({"train loss": curve.train_loss, "held-back top-2": curve.holdout_top2},
                        index=pd.RangeIndex(1, len(curve.train_loss) + 1, name="epoch"))


st.title("Train a learned matcher")
eng = engine()
if eng is None:
    st.stop()
sel = selection()
learned = list(learned_matchers())
method = st.selectbox("Matcher", learned, index=learned.index(sel.method) if sel.method in learned else 0,
                      key="train_method", format_func=lambda name: f"{name} — {matcher_part(name).help}")
part = matcher_part(method)
specs = settable_options(method)
current = dict(sel.options if sel.method == method else default_options(method))
with st.form("train_options"):
    cols = st.columns(4)
    values = {spec.name: option_input(cols[k % 4], spec, current.get(spec.name, spec.default), f"opt_{method}_{spec.name}")
              for k, spec in enumerate(specs)}
    submitted = st.form_submit_button("Train", type="primary")

try:
    checked = part.checked_options(values)
except TLLError as exc:
    show_error(exc)
    st.stop()
changed = tuple(sorted((spec.name, checked[spec.name]) for spec in specs if checked[spec.name] != spec.default))
target = replace(sel, split="validation", method=method, options=changed)
if submitted:
    progress = st.progress(0.0, text="training…")
    chart = st.empty()
    history = TrainingCurve()

    def on_epoch(report: EpochReport) -> None:
        history.train_loss.append(report.train_loss)
        history.holdout_top2.append(report.holdout_top2)
        progress.progress(report.epoch / report.epochs, text=f"epoch {report.epoch}/{report.epochs}")
        chart.line_chart(curve_frame(history))

    try:
        _, fit = eng.tasks_for("validation", target.val_fraction, target.seed)
        matcher = eng.fit(target.to_method(), target.backbone, fit, callback=on_epoch)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    progress.progress(1.0, text="done" if history.train_loss else "done (taken from the trained-matcher cache)")
    remember_curve(target, matcher.curve)
    apply(target)
    st.rerun()  # redraw the sidebar with the trained matcher selected

curve = trained_curve(target)
if curve is not None:
    try:
        tasks, scores = scored(data_folder(), target, device())
    except TLLError as exc:
        show_error(exc)
        st.stop()
    result = evaluate_scores(scores, tasks.truth, seed=target.seed)
    st.success(f"{md(target.label)}: validation top-2 {result.top2:.3f} [{result.top2_ci[0]:.3f}, {result.top2_ci[1]:.3f}], "
               f"top-1 {result.top1:.3f}, MRR {result.mrr:.3f}. It is now the selection on every page.")
    st.line_chart(curve_frame(curve))
    st.caption(f"Best held-back epoch: {curve.best_epoch} of {len(curve.train_loss)} (early stopping keeps it).")
