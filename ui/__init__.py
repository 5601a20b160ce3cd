"""Helpers for the Streamlit app: strings (i18n), charts, tables, cached tlcore calls, state, sidebar.

Nothing here trains or builds models itself: it words, draws and caches what `tlcore` returns.
"""
