"""Node: one agent's power by component, energy, emissions, grid intensity, PUE, GPUs and
what each source is doing."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from boards.common import (
    COUNT,
    G_PER_KWH,
    GRAMS,
    GRAMS_PER_HOUR,
    J_PER_KWH,
    KWH,
    NONE,
    RANGE,
    RATE,
    RATIO,
    WATT,
    board,
    listing,
    merged,
    query_variable,
    series,
    single,
    target,
)

N = '{instance="$instance"}'
COUNTED = "* on (instance, job, source, device) group_left carbonscope_node_energy_source_info"


def build() -> dashboard.Dashboard:
    return (
        board(
            "carbonscope-node",
            "carbonscope / Node",
            "One node: power by component (each joule once), energy and emissions, the grid "
            "intensity it is weighed with, PUE, GPUs, and which sources measure or model.",
        )
        .with_variable(
            query_variable("instance", "Node", "label_values(carbonscope_build_info, instance)")
        )
        .with_panel(
            series(
                "Node power by component",
                WATT,
                target(
                    "sum by (component) "
                    f"(rate(carbonscope_energy_joules_total{N}{RATE}) {COUNTED})",
                    "{{component}}",
                ),
                stacked=True,
                width=16,
            )
        )
        .with_panel(
            single(
                "Node power",
                WATT,
                target(f"rate(carbonscope_node_energy_joules_total{N}{RATE})", "node"),
                width=8,
            )
        )
        .with_panel(
            single(
                "Energy today",
                KWH,
                target(f"increase(carbonscope_node_energy_joules_total{N}{RANGE}) / {J_PER_KWH}"),
            ).time_from("now/d")
        )
        .with_panel(
            single(
                "Energy over the range",
                KWH,
                target(f"increase(carbonscope_node_energy_joules_total{N}{RANGE}) / {J_PER_KWH}"),
            )
        )
        .with_panel(
            single(
                "Emissions over the range",
                GRAMS,
                target(
                    f"sum by (method) (increase(carbonscope_emissions_grams_total{N}{RANGE}))",
                    "{{method}}",
                ),
            )
        )
        .with_panel(single("PUE", NONE, target(f"carbonscope_pue_ratio{N}", "PUE")))
        .with_panel(
            series(
                "Emissions rate (location- and market-based)",
                GRAMS_PER_HOUR,
                target(
                    f"sum by (method) (rate(carbonscope_emissions_grams_total{N}{RATE})) * 3600",
                    "{{method}}",
                ),
            )
        )
        .with_panel(
            series(
                "Grid intensity and its forecast",
                G_PER_KWH,
                target(
                    f"carbonscope_grid_intensity_grams_per_kwh{N}",
                    "{{location}} {{signal}} ({{provider}})",
                ),
                target(
                    'carbonscope_grid_intensity_forecast_grams_per_kwh{instance="$instance", '
                    'hours_ahead=~"1|6|12|24"}',
                    "forecast +{{hours_ahead}}h",
                    ref="B",
                ),
            )
        )
        .with_panel(
            series(
                "GPU power and its limit",
                WATT,
                target(
                    'rate(carbonscope_energy_joules_total{instance="$instance", component="gpu"}'
                    f"{RATE})",
                    "{{device}}",
                ),
                target(
                    f"carbonscope_gpu_power_limit_watts{N}",
                    "{{device}} limit",
                    ref="B",
                ),
            )
        )
        .with_panel(
            single(
                "Share of energy modelled",
                RATIO,
                target(
                    "(sum(rate(carbonscope_energy_joules_total"
                    f'{{instance="$instance", source="model"}}{RATE})) or vector(0)) '
                    f"/ sum(rate(carbonscope_node_energy_joules_total{N}{RATE}))"
                ),
            )
        )
        .with_panel(
            merged(
                listing(
                    "Sources: what is measured, what is modelled (±), what fails and why",
                    NONE,
                    target(
                        'carbonscope_source_status{instance="$instance"} == 1',
                        ref="A",
                        instant=True,
                    ),
                    target(
                        f"carbonscope_model_uncertainty_ratio{N}",
                        ref="B",
                        instant=True,
                    ),
                    width=18,
                )
            )
        )
        .with_panel(
            single(
                "Sources not ok",
                COUNT,
                target(
                    'count(carbonscope_source_status{instance="$instance", status!="ok"} == 1) '
                    "or vector(0)"
                ),
            )
        )
    )


DESCRIPTIONS = {
    "Node power by component": "Mean power over the rate interval of the devices node energy "
    "sums (a platform meter and GPUs, or packages, DRAM and GPUs): stacked, it is node power.",
    "Node power": "The node's IT power from its energy counter, each joule once.",
    "Energy today": "The node's energy since midnight (the dashboard's time zone).",
    "Energy over the range": "The node's energy over the dashboard's time range.",
    "Emissions over the range": "Location-based and market-based gCO2e over the range: energy "
    "x PUE x the intensity in force at each sample.",
    "PUE": "The facility overhead the agent applies (carbon.pue).",
    "Emissions rate (location- and market-based)": "gCO2e per hour, both Scope 2 methods.",
    "Grid intensity and its forecast": "The intensity the node's emissions are weighed with, and "
    "the live provider's forecast 1, 6, 12 and 24 hours ahead.",
    "GPU power and its limit": "Each GPU's power from its energy counter, against its "
    "enforced power limit.",
    "Share of energy modelled": "How much of the node's energy a model estimated (0 % where "
    "every source measures).",
    "Sources: what is measured, what is modelled (±), what fails and why": "Each source and "
    "device with its status (ok, permission_denied, not_present, error, stale, ...), and the "
    "model's relative uncertainty per component where it is used.",
    "Sources not ok": "Devices whose status is anything but ok.",
}
