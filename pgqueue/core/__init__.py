"""The queue core: submit, claim, complete, release, cancel and sweep runs
(``queue``), one LISTEN connection per process (``notifier``), and the
contract between a worker and the work it runs (``handler``).

Generic: a run's work is any async callable. Nothing here knows LangGraph.
"""
