"""The studio's shared code (not pages): what every page of ``app.py`` draws with and reads from.

Neither this code nor the pages live in a ``pages/`` folder: Streamlit treats one next to ``app.py`` as its
old automatic multipage app, where every file in it is a page of its own navigation and a deep link such as
``/ranked`` runs that file *instead of* ``app.py`` (no sidebar, no page config) until some session has run
``st.navigation``. The pages are ``app_pages/*.py``; ``app.py`` draws the sidebar once
(:func:`studio.sidebar.sidebar`) before running the page that ``st.navigation`` picks. Pages lay out what
``tll_core`` computes:

- :mod:`studio.widgets` — literal text (:func:`~studio.widgets.md`), one-line errors, images from the
  dataset's confined reader, and option widgets generated from a part's register entry;
- :mod:`studio.state` — the selection, the engine per data folder and the cached figures;
- :mod:`studio.sidebar` — the shared sidebar.
"""
