"""The studio's shared code (not pages): what every page of ``app.py`` draws with and reads from.

It is not in ``pages/``: Streamlit treats that folder beside ``app.py`` as its old automatic multipage app,
where every file is a page (a shared module there showed up in the navigation). ``app.py`` draws the sidebar
once (:func:`studio.sidebar.sidebar`) before running the page that ``st.navigation`` picks; each page starts
with :func:`studio.entry.enter`, which runs ``app.py`` instead when Streamlit runs the page file directly (a
deep link on a fresh server). Pages lay out what ``tll_core`` computes:

- :mod:`studio.widgets` — literal text (:func:`~studio.widgets.md`), one-line errors, images from the
  dataset's confined reader, and option widgets generated from a part's register entry;
- :mod:`studio.session` — every key kept in ``st.session_state``, typed, in one place;
- :mod:`studio.folder` — the chosen data folder's engine (one per folder state) and tag store;
- :mod:`studio.memo` — every figure a page shows, computed once per folder content and selection;
- :mod:`studio.links` — the URL and the links between pages (a left in Ranked, a pair in Why, the map's focus);
- :mod:`studio.progress` — the progress bar the engine's reports move;
- :mod:`studio.sidebar` — the shared sidebar;
- :mod:`studio.entry` — a page run outside ``app.py`` runs ``app.py`` instead.
"""
