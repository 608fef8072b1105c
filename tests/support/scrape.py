"""Scraping ``/metrics`` as Prometheus would, and reading the samples."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

METRICS_AT = re.compile(r"^pgqueue: metrics on (http://\S+)/metrics$", re.MULTILINE)


@dataclass
class Samples:
    """One scrape: (sample name, labels) -> value."""

    values: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def sum(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``
        (0 when there is none: a counter never incremented has no series)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.values.items() if n == name and wanted <= ls)

    def get(self, name: str, **labels: str) -> float:
        """The one sample with exactly these labels (KeyError if absent)."""
        return self.values[(name, frozenset(labels.items()))]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.values)


def scrape(base_url: str) -> Samples:
    response = httpx.get(base_url + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Samples(values)


def total(scrapes: list[Samples], name: str, **labels: str) -> float:
    """A per-process counter summed over every process's scrape."""
    return sum(s.sum(name, **labels) for s in scrapes)
