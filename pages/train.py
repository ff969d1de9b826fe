"""Train: fit a learned matcher with its options, watch the curves; "use this model" makes it the selection.

The matchers and their option widgets come from the register (a new matcher or option needs no edit here);
the matcher is fitted once and hands back its training curve, which is kept for this selection.
"""
from dataclasses import replace

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from studio import session
from studio.entry import enter
from studio.folder import engine
from studio.links import set_selection
from studio.memo import figures, train, trained_curve
from studio.progress import progress_bar
from studio.session import selection
from studio.widgets import md, option_input, show_error
from tll_core.errors import TLLError
from tll_core.matchers import TrainingCurve, learned_matchers, matcher_part
from tll_core.selection import default_options, settable_options

enter()  # run directly (a deep link on a fresh server): app.py runs instead


def curve_figure(curve: TrainingCurve, best_epoch: int | None = None) -> go.Figure:
    """Loss and held-back top-2 on their own axes (one scale would flatten the top-2), sharing the epochs;
    the epoch early stopping kept is marked on both."""
    epochs = list(range(1, len(curve.train_loss) + 1))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("training loss", "held-back top-2"))
    fig.add_trace(go.Scatter(x=epochs, y=curve.train_loss, mode="lines+markers", name="training loss",
                             line_color="#0072B2"), row=1, col=1)
    fig.add_trace(go.Scatter(x=epochs, y=curve.holdout_top2, mode="lines+markers", name="held-back top-2",
                             line_color="#D55E00"), row=2, col=1)
    if best_epoch:
        fig.add_vline(x=best_epoch, line_dash="dash", line_color="#009E73",
                      annotation_text=f"kept: epoch {best_epoch}", annotation_position="top left")
    fig.update_layout(height=440, margin=dict(t=30, b=30), showlegend=False)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    return fig


st.title("Train a learned matcher")
if engine() is None:  # a bad folder: one line
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
    chart = st.empty()
    history = TrainingCurve()
    with progress_bar("embedding the fit pairs") as bar:
        def on_epoch(report) -> None:
            bar.epoch(report)
            history.train_loss.append(report.train_loss)
            history.holdout_top2.append(report.holdout_top2)
            chart.plotly_chart(curve_figure(history))

        try:
            train(target, bar, on_epoch)
        except TLLError as exc:
            show_error(exc)
            st.stop()
    chart.empty()
    session.TRAIN_FRESH.set(bool(history.train_loss))  # False: the trained-matcher store (or the memo) answered

curve = trained_curve(target)
if curve is not None:
    try:
        with progress_bar("embedding the validation tasks") as bar:
            result = figures(target, bar)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    source = "" if session.TRAIN_FRESH.get() else " (taken from the trained-matcher store)"
    st.success(f"{md(target.label)}{source}: validation top-2 {result.top2:.3f} [{result.top2_ci[0]:.3f}, "
               f"{result.top2_ci[1]:.3f}], top-1 {result.top1:.3f}, MRR {result.mrr:.3f}.")
    if selection() == target:
        st.info("This model is the selection on every page.")
    else:
        st.button("Use this model", type="primary", on_click=set_selection, args=(target,),
                  help="make it the selection on every page (sidebar, leaderboard, Ranked, …)")
    st.plotly_chart(curve_figure(curve, curve.best_epoch), key="train_curve")
    members = dict(target.options).get("members", 1)
    st.caption(f"Early stopping kept epoch {curve.best_epoch} of the {len(curve.train_loss)} run "
               f"(the best held-back top-2); training stops once it has not improved for a while."
               + (f" The curve is the first of its {members} maps; each trained from its own seed, holding back "
                  f"its own pairs, and the scores are the mean of their cosines." if members > 1 else ""))
