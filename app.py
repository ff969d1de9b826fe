"""The TLL matching studio (entry point): ``streamlit run app.py``."""
import streamlit as st

st.set_page_config(page_title="TLL matching studio", layout="wide")
navigation = st.navigation([st.Page("pages/overview.py", title="Overview", default=True)])
navigation.run()
