"""Evaluation: the 20-candidate tasks (``tasks``), metrics and figures (``metrics``, ``figures``), the
full-gallery protocol (``gallery``), significance (``significance``) and the result rows every front end shows
(``results``)."""
