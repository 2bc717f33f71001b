"""carbonscope's own text writer against prometheus_client's generate_latest: the same bytes
for any family, label value and number (hypothesis), so replacing it changed no scrape."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import core as reference

from carbonscope.exporters.prometheus import text as ours

names = st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z").filter(
    lambda n: not n.endswith(("_total", "_bucket", "_count", "_sum", "_created", "_info"))
)
label_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z").filter(
    lambda n: n != "le" and not n.startswith("__")
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**18), 10**18),
    st.sampled_from([0.0, 1e-9, 1.7e9, 1234567.0, 12345678.9, 2**53, 0.1]),
)
texts = st.text(max_size=30)  # any unicode: quotes, backslashes, newlines
families = st.lists(
    st.tuples(
        st.sampled_from(["counter", "gauge", "histogram"]),
        names,
        texts,
        st.lists(label_names, max_size=3, unique=True),
        st.lists(st.tuples(st.lists(texts, min_size=3, max_size=3), values), max_size=4),
    ),
    max_size=5,
    unique_by=lambda family: family[1],
)


def build(module: Any, kind: str, name: str, doc: str, labels: list[str], rows: Any) -> Any:
    if kind == "histogram":
        family = module.HistogramMetricFamily(name, doc, labels=labels)
        for label_values, value in rows:
            buckets = [("0.5", 1.0), ("+Inf", 2.0)]
            family.add_metric(label_values[: len(labels)], buckets, float(value))
        return family
    cls = module.CounterMetricFamily if kind == "counter" else module.GaugeMetricFamily
    family = cls(name, doc, labels=labels)
    for label_values, value in rows:
        family.add_metric(label_values[: len(labels)], value)
    return family


class Fixed:
    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Any]:
        return self.metrics


@settings(max_examples=400, deadline=None)
@given(families)
def test_the_same_bytes_as_prometheus_client(generated: list[Any]) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed([build(reference, *family) for family in generated]))  # type: ignore[arg-type]
    expected = generate_latest(registry)
    assert ours.exposition(build(ours, *family) for family in generated) == expected


def test_values_as_go_writes_them() -> None:
    cases = {1.0: "1.0", 1.7e9: "1.7e+09", 12345678.9: "1.23456789e+07", -3.0: "-3.0"}
    cases |= {float("inf"): "+Inf", float("-inf"): "-Inf", 0.0: "0.0"}
    assert {value: ours.format_value(value) for value in cases} == cases
    assert ours.format_value(float("nan")) == "NaN"
