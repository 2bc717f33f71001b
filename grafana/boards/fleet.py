"""Fleet: every node together: power and emissions, the top nodes, by grid location and
intensity provider, measured vs modelled, agents down, nodes on a fallback."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from boards.common import (
    COUNT,
    GRAMS_PER_HOUR,
    J_PER_KWH,
    KILOGRAMS,
    KWH,
    RANGE,
    RATE,
    RATIO,
    WATT,
    board,
    listing,
    query_variable,
    series,
    single,
    target,
)


def build() -> dashboard.Dashboard:
    return (
        board(
            "carbonscope-fleet",
            "carbonscope / Fleet",
            "Every node Prometheus scrapes: total power and emissions, the top nodes, by grid "
            "location and intensity provider, how much is measured, and who is down.",
        )
        .with_variable(
            query_variable("scrape_job", "Scrape job", "label_values(carbonscope_build_info, job)")
        )
        .with_panel(
            series(
                "Fleet power",
                WATT,
                target(f"sum(rate(carbonscope_node_energy_joules_total{RATE}))", "all nodes"),
                width=16,
            )
        )
        .with_panel(
            single(
                "Fleet energy over the range",
                KWH,
                target(f"sum(increase(carbonscope_node_energy_joules_total{RANGE})) / {J_PER_KWH}"),
                width=8,
            )
        )
        .with_panel(
            series(
                "Fleet emissions rate",
                GRAMS_PER_HOUR,
                target(
                    f"sum by (method) (rate(carbonscope_emissions_grams_total{RATE})) * 3600",
                    "{{method}}",
                ),
            )
        )
        .with_panel(
            single(
                "Fleet emissions over the range",
                KILOGRAMS,
                target(
                    f"sum by (method) (increase(carbonscope_emissions_grams_total{RANGE})) / 1000",
                    "{{method}}",
                ),
            )
        )
        .with_panel(
            single(
                "Share of energy measured",
                RATIO,
                target(
                    "1 - (sum(rate(carbonscope_energy_joules_total"
                    f'{{source="model"}}{RATE})) or vector(0)) '
                    f"/ sum(rate(carbonscope_node_energy_joules_total{RATE}))"
                ),
            )
        )
        .with_panel(
            listing(
                "Top nodes by energy over the range",
                KWH,
                target(
                    "topk(10, increase(carbonscope_node_energy_joules_total"
                    f"{RANGE}) / {J_PER_KWH})",
                    instant=True,
                ),
            )
        )
        .with_panel(
            series(
                "Power by grid location",
                WATT,
                target(
                    f"sum by (location) (rate(carbonscope_node_energy_joules_total{RATE}) "
                    "* on (instance, job) group_left (location) carbonscope_grid_location_info)",
                    "{{location}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            series(
                "Emissions rate by intensity provider",
                GRAMS_PER_HOUR,
                target(
                    "sum by (provider) (rate(carbonscope_emissions_grams_total"
                    f'{{method="location"}}{RATE}) * 3600 '
                    "* on (instance, job) group_left (provider) "
                    "max by (instance, job, provider) "
                    '(carbonscope_grid_intensity_info{signal="average"}))',
                    "{{provider}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            single(
                "Agents down",
                COUNT,
                target('count(up{job="$scrape_job"} == 0) or vector(0)'),
            )
        )
        .with_panel(
            single(
                "Nodes on the static fallback",
                COUNT,
                target(
                    'count(carbonscope_intensity_provider_status{status="fallback"} == 1) '
                    "or vector(0)"
                ),
            )
        )
        .with_panel(
            single(
                "Nodes on the world average",
                COUNT,
                target('count(carbonscope_grid_location_info{resolved_by="default"}) or vector(0)'),
            )
        )
        .with_panel(
            single(
                "Nodes reporting",
                COUNT,
                target("count(carbonscope_build_info)"),
            )
        )
    )


DESCRIPTIONS = {
    "Fleet power": "All nodes' IT power together, from their energy counters.",
    "Fleet energy over the range": "All nodes' energy over the dashboard's time range.",
    "Fleet emissions rate": "All nodes' gCO2e per hour, location- and market-based.",
    "Fleet emissions over the range": "All nodes' Scope 2 emissions over the range, kgCO2e.",
    "Share of energy measured": "The share of the fleet's energy a sensor measured rather "
    "than the model estimated.",
    "Top nodes by energy over the range": "The ten nodes that used the most energy.",
    "Power by grid location": "Power by the grid each node's emissions are weighed with.",
    "Emissions rate by intensity provider": "Location-based gCO2e per hour by where the "
    "intensity comes from (static data or a live API).",
    "Agents down": "Scrape targets of the chosen job that do not answer.",
    "Nodes on the static fallback": "Nodes whose live intensity provider fails, so the "
    "static yearly average is in force.",
    "Nodes on the world average": "Nodes that found no grid location (set carbon.location).",
    "Nodes reporting": "Agents Prometheus has a sample of.",
}
