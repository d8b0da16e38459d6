"""Gauges of time to or from a moment, read off the clock when Prometheus scrapes.

A poll's lag keeps growing while polls fail, and a token's time to expiry keeps
shrinking between refreshes; a gauge set at the event would freeze. A `ClockGauge`
keeps the moment per label value and answers with the seconds between it and now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class ClockGauge(Collector):
    """Per label value, seconds since (``since=True``) or until a moment."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        *,
        since: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.since = since
        self._clock = clock
        self._moments_s: dict[str, float] = {}
        REGISTRY.register(self)

    def mark(self, value: str, moment_s: float) -> None:
        """Remember ``moment_s`` (epoch seconds) for the label ``value``."""
        self._moments_s[value] = moment_s

    def forget(self, value: str) -> None:
        self._moments_s.pop(value, None)

    def seconds(self, value: str) -> float | None:
        """What a scrape would show for ``value`` now."""
        moment_s = self._moments_s.get(value)
        if moment_s is None:
            return None
        now_s = self._clock()
        return now_s - moment_s if self.since else moment_s - now_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for value in list(self._moments_s):
            seconds = self.seconds(value)
            if seconds is not None:
                family.add_metric([value], seconds)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
