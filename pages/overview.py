"""Overview: the data source and the zero-shot leaderboard of the weight-free backbones."""
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from tll_core.backbones.registry import REGISTRY
from tll_core.cache import default_cache_dir
from tll_core.demo import write_demo
from tll_core.engine import Engine
from tll_core.errors import TLLError
from tll_core.metrics import METRICS


@st.cache_resource(show_spinner="Loading the data…")
def open_engine(data: str) -> Engine:
    return Engine.open(data)


@st.cache_data(show_spinner="Embedding and scoring…", max_entries=16)
def leaderboard(data: str, backbones: tuple[str, ...]) -> pd.DataFrame:
    rows = open_engine(data).evaluate(list(backbones), list(METRICS))
    return pd.DataFrame([r.__dict__ for r in rows])


st.title("Totally-Looks-Like matching studio")
default = os.environ.get("TLL_DATA") or str(default_cache_dir() / "demo")
data = st.text_input("Data folder (Kaggle or release layout)", value=default)
try:
    if data == str(default_cache_dir() / "demo"):
        write_demo(data)
    engine = open_engine(data)
    summary = engine.dataset.summary()
    for column, key in zip(st.columns(4), ("layout", "train_pairs", "test_lefts", "images")):
        column.metric(key.replace("_", " "), summary[key])
    weight_free = tuple(n for n, c in REGISTRY.items() if not c.needs_weights)
    table = leaderboard(data, weight_free)
    st.subheader("Zero-shot leaderboard (validation tasks, top-2 is the competition metric)")
    st.dataframe(table, hide_index=True)
except TLLError as exc:
    st.error(str(exc))
st.info("Coming next: ranked candidates, failures, method comparison, embedding maps, training and submissions.")
