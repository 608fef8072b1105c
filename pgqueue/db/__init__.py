"""The database layer: connections and pools, JSON encoding, run ids, every
runtime SQL statement (``sql/``), migrations and the embedded server.

Imports nothing of pgqueue above ``types`` and ``errors``.
"""
