"""Train: fit a learned matcher with its options, watch the curves; the result becomes the selection."""
from dataclasses import replace

import pandas as pd
import streamlit as st

from pages.common import apply, data_folder, device, engine, md, scored, selection, show_error, sidebar
from tll_core.errors import TLLError
from tll_core.matchers import matcher_part
from tll_core.register import REGISTER
from tll_core.metrics import evaluate_scores

sidebar()
st.title("Train a learned matcher")
eng = engine()
if eng is None:
    st.stop()
sel = selection()
learned = [m for m in REGISTER.names("matcher") if matcher_part(m).metric is not None]
method = st.selectbox("Matcher", learned, index=learned.index(sel.method) if sel.method in learned else 0, key="train_method")
defaults = {spec.name: spec.default for spec in matcher_part(method).options}
current = dict(sel.options) if sel.method == method else {}
options = {}
with st.form("train_options"):
    cols = st.columns(4)
    for k, (name, default) in enumerate(defaults.items()):
        value = current.get(name, default)
        col = cols[k % 4]
        if isinstance(default, bool):
            options[name] = col.checkbox(name, value=bool(value), key=f"opt_{method}_{name}")
        elif name == "sampling":
            options[name] = col.selectbox(name, ["balanced", "1:19"], index=["balanced", "1:19"].index(value), key=f"opt_{method}_{name}")
        elif isinstance(default, int):
            options[name] = int(col.number_input(name, value=int(value), step=1, key=f"opt_{method}_{name}"))
        else:
            options[name] = float(col.number_input(name, value=float(value), format="%.4g", key=f"opt_{method}_{name}"))
    submitted = st.form_submit_button("Train", type="primary")

changed = tuple(sorted((k, v) for k, v in options.items() if v != defaults[k]))
target = replace(sel, split="validation", method=method, options=changed)
if submitted:
    progress = st.progress(0.0, text="training…")
    chart = st.empty()
    history: list[dict] = []

    def on_epoch(report) -> None:
        history.append({"epoch": report.epoch, "train loss": report.train_loss, "held-back top-2": report.holdout_top2})
        progress.progress(report.epoch / report.epochs, text=f"epoch {report.epoch}/{report.epochs}")
        chart.line_chart(pd.DataFrame(history).set_index("epoch"))

    split = eng.validation(target.val_fraction, target.seed)
    try:
        matcher = eng.fit(target.to_method(), target.backbone, split.fit, callback=on_epoch)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    progress.progress(1.0, text="done" if history else "done (taken from the trained-matcher cache)")
    apply(target)
    st.session_state["train_result"] = target
    st.rerun()  # redraw the sidebar with the trained matcher selected
if st.session_state.get("train_result") == target:
    tasks, scores = scored(data_folder(), target, device())
    result = evaluate_scores(scores, tasks.truth)
    st.success(f"{md(target.label)}: validation top-2 {result.top2:.3f} [{result.top2_ci[0]:.3f}, {result.top2_ci[1]:.3f}], "
               f"top-1 {result.top1:.3f}, MRR {result.mrr:.3f}. It is now the selection on every page.")
    matcher = eng.fit(target.to_method(), target.backbone, eng.validation(target.val_fraction, target.seed).fit)
    curve = pd.DataFrame({"train loss": matcher.curve.train_loss, "held-back top-2": matcher.curve.holdout_top2},
                         index=pd.RangeIndex(1, len(matcher.curve.train_loss) + 1, name="epoch"))
    st.line_chart(curve)
    st.caption(f"Best held-back epoch: {matcher.curve.best_epoch} (early stopping, patience {dict(target.options).get('patience', 10)}).")
