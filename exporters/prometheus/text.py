"""The Prometheus text exposition format (0.0.4), written directly.

The same bytes prometheus_client's ``generate_latest`` writes for these families (a test
compares both on generated families, and the golden file pins the whole /metrics), without
importing prometheus_client into the daemon: that import alone costs about 10 MiB of RSS
(ssl, wsgiref, its registries) and its writer checks every label on every line. The family
classes take the same arguments as prometheus_client's, so the collectors read the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

# The Content-Type of this format: version 0.0.4, which every Prometheus since 2.0 reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[str, tuple[tuple[str, str], ...], float]  # (name, sorted labels, value)


class Metric:
    """One family: a name, its help, its type and its samples."""

    type = "untyped"

    def __init__(self, name: str, documentation: str, labels: Sequence[str] | None) -> None:
        self.name = name
        self.documentation = documentation
        self._labels = tuple(labels or ())
        self.samples: list[Sample] = []

    def _add(
        self, name: str, values: Sequence[str], value: float, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        labels = tuple(sorted((*zip(self._labels, values, strict=True), *extra)))
        self.samples.append((name, labels, value))

    @property
    def exposed_name(self) -> str:
        return self.name


class _ValueFamily(Metric):
    """A family of plain samples named ``name + SUFFIX``."""

    SUFFIX = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name.removesuffix(self.SUFFIX), documentation, labels)
        if value is not None:
            self.add_metric((), value)

    @property
    def exposed_name(self) -> str:
        return self.name + self.SUFFIX

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self._add(self.exposed_name, labels, value)


class GaugeMetricFamily(_ValueFamily):
    type = "gauge"


class CounterMetricFamily(_ValueFamily):
    """A counter named without ``_total``: the exposition adds it."""

    type = "counter"
    SUFFIX = "_total"


class HistogramMetricFamily(Metric):
    """Buckets are (upper bound as written, cumulative count), +Inf last."""

    type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[tuple[str, float]] | None = None,
        sum_value: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, documentation, labels)
        if buckets is not None:
            self.add_metric((), buckets, sum_value)

    def add_metric(
        self, labels: Sequence[str], buckets: Sequence[tuple[str, float]], sum_value: float | None
    ) -> None:
        for bound, count in buckets:
            self._add(self.name + "_bucket", labels, count, (("le", bound),))
        if sum_value is not None:
            self._add(self.name + "_count", labels, buckets[-1][1])
            self._add(self.name + "_sum", labels, sum_value)


def format_value(value: float) -> str:
    """A sample value as Go's strconv writes it (what Prometheus's own clients emit)."""
    number = float(value)
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    text = repr(number)
    dot = text.find(".")
    if number > 0 and dot > 6:  # Go switches to an exponent sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def exposition(families: Iterable[Metric]) -> bytes:
    lines: list[str] = []
    for family in families:
        name = family.exposed_name
        lines.append(f"# HELP {name} {_help(family.documentation)}\n# TYPE {name} {family.type}\n")
        for sample_name, labels, value in family.samples:
            if labels:
                label_text = ",".join(f'{key}="{_label_value(text)}"' for key, text in labels)
                lines.append(f"{sample_name}{{{label_text}}} {format_value(value)}\n")
            else:
                lines.append(f"{sample_name} {format_value(value)}\n")
    return "".join(lines).encode("utf-8")
