"""Seeing inside: Prometheus metrics and structured logs.

``metrics``: this process's counters and histograms, incremented where
things happen (a claim, a heartbeat, a sweep, a run's end), and its pools.
``database``: the gauges every process reads from the same rows at scrape
time (runs by status, queue depth, wait times, workers). ``exporter``:
the text a scrape gets, and a small HTTP server for processes without one.
``logs``: the run a log line is about, and a JSON line format.
"""
