"""What every carbonscope panel shares: the datasource variable, units, sizes, query helpers.

Rules every panel follows (tests/test_dashboards.py checks them): its datasource is the
``$datasource`` variable; ``rate`` and ``increase`` take ``[$__rate_interval]`` (over time)
or ``[$__range]`` (a total over the range); totals are ``increase()`` of counters; a gauge
is never summed over time; every panel has a unit.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig
from grafana_foundation_sdk.models.common import GraphDrawStyle, StackingMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    VariableRefresh,
    VariableSort,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
RANGE = "[$__range]"
J_PER_KWH = "3.6e6"

# Grafana unit ids
WATT = "watt"
KWH = "kwatth"
GRAMS = "massg"
KILOGRAMS = "masskg"
GRAMS_PER_HOUR = "suffix: gCO2e/h"
G_PER_KWH = "suffix: gCO2e/kWh"
RATIO = "percentunit"
COUNT = "short"
NONE = "none"


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(
    name: str, label: str, query: str, multi: bool = False
) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def target(
    expr: str, legend: str = "", ref: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).legend_format(legend or "__auto")
    if instant:
        query = query.instant().format("table")
    return query


def series(
    title: str, unit: str, *targets: prometheus.Dataquery, stacked: bool = False, width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .draw_style(GraphDrawStyle.LINE)
        .fill_opacity(30 if stacked else 10)
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    for query in targets:
        panel = panel.with_target(query)
    return panel


def single(title: str, unit: str, *targets: prometheus.Dataquery, width: int = 6) -> stat.Panel:
    panel = stat.Panel().title(title).datasource(DATASOURCE).unit(unit).span(width).height(4)
    for query in targets:
        panel = panel.with_target(query)
    return panel


def listing(title: str, unit: str, *targets: prometheus.Dataquery, width: int = 12) -> table.Panel:
    panel = table.Panel().title(title).datasource(DATASOURCE).unit(unit).span(width).height(8)
    for query in targets:
        panel = panel.with_target(query)
    return panel


def merged(panel: table.Panel) -> table.Panel:
    """A table of several instant queries, one row per series (Grafana's "merge")."""
    return panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))


def board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["carbonscope"])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
    )
