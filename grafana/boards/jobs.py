"""Jobs / green AI: top jobs, users and teams by kWh and gCO2e, running jobs, one job's power
by component, a table that links each job to its node, and when jobs ran against the grid's
intensity and forecast. Names and tags come from carbonscope_job_info, joined on job_id."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

from boards.common import (
    COUNT,
    G_PER_KWH,
    GRAMS,
    J_PER_KWH,
    KWH,
    NONE,
    RANGE,
    RATE,
    WATT,
    board,
    listing,
    merged,
    query_variable,
    series,
    target,
)

NODES = '{instance=~"$instance"}'
INFO = "max by (instance, job, job_id, job_name, user, tag_team) (carbonscope_job_info)"
NAMED = f"* on (instance, job, job_id) group_left (job_name, user, tag_team) {INFO}"


def job_kwh() -> str:
    return (
        f"sum by (instance, job, job_id) (increase(carbonscope_job_energy_joules_total{NODES}"
        f"{RANGE})) / {J_PER_KWH}"
    )


def job_grams() -> str:
    return (
        "sum by (instance, job, job_id) (increase(carbonscope_job_emissions_grams_total"
        f'{{instance=~"$instance", method="location"}}{RANGE}))'
    )


def build() -> dashboard.Dashboard:
    return (
        board(
            "carbonscope-jobs",
            "carbonscope / Jobs",
            "What jobs cost: kWh and gCO2e by job, user and team over the range (idle share "
            "included per jobs.idle_policy), running jobs, one job's power, and when jobs ran "
            "against the grid's intensity.",
        )
        .with_variable(
            query_variable(
                "instance", "Nodes", "label_values(carbonscope_build_info, instance)", multi=True
            )
        )
        .with_variable(
            query_variable("job_id", "Job", f"label_values(carbonscope_job_info{NODES}, job_id)")
        )
        .with_panel(
            listing(
                "Top jobs by energy", KWH, target(f"topk(10, {job_kwh()} {NAMED})", instant=True)
            )
        )
        .with_panel(
            listing(
                "Top jobs by emissions (location-based)",
                GRAMS,
                target(f"topk(10, {job_grams()} {NAMED})", instant=True),
            )
        )
        .with_panel(
            listing(
                "Top users by energy",
                KWH,
                target(f"topk(10, sum by (user) ({job_kwh()} {NAMED}))", instant=True),
                width=8,
            )
        )
        .with_panel(
            listing(
                "Top users by emissions",
                GRAMS,
                target(f"topk(10, sum by (user) ({job_grams()} {NAMED}))", instant=True),
                width=8,
            )
        )
        .with_panel(
            listing(
                "Top teams by energy",
                KWH,
                target(f"topk(10, sum by (tag_team) ({job_kwh()} {NAMED}))", instant=True),
                width=8,
            )
        )
        .with_panel(
            listing(
                "Top teams by emissions",
                GRAMS,
                target(f"topk(10, sum by (tag_team) ({job_grams()} {NAMED}))", instant=True),
                width=8,
            )
        )
        .with_panel(
            listing(
                "Running jobs",
                NONE,
                target(
                    f"{INFO} and on (instance, job, job_id) (carbonscope_job_running == 1)",
                    instant=True,
                ),
            )
        )
        .with_panel(
            series(
                "Power of job $job_id by component",
                WATT,
                target(
                    "sum by (component) (rate(carbonscope_job_energy_joules_total"
                    f'{{job_id="$job_id"}}{RATE}))',
                    "{{component}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            merged(
                listing(
                    "Jobs: kWh and gCO2e, linked to their node",
                    NONE,
                    target(f"{job_kwh()} {NAMED}", ref="A", instant=True),
                    target(f"{job_grams()} {NAMED}", ref="B", instant=True),
                    width=24,
                )
            ).data_links(
                [
                    dashboard.DashboardLink("Node dashboard").url(
                        "/d/carbonscope-node?var-instance=${__data.fields.instance}"
                        "&${__url_time_range}"
                    )
                ]
            )
        )
        .with_panel(
            series(
                "When jobs ran against the grid's intensity (carbon-aware scheduling)",
                G_PER_KWH,
                target(
                    "avg by (location) (carbonscope_grid_intensity_grams_per_kwh"
                    '{instance=~"$instance", signal="average"})',
                    "intensity {{location}}",
                ),
                target(
                    "avg by (location, hours_ahead) "
                    "(carbonscope_grid_intensity_forecast_grams_per_kwh"
                    '{instance=~"$instance", hours_ahead=~"1|6|12|24"})',
                    "forecast +{{hours_ahead}}h {{location}}",
                    ref="B",
                ),
                target(
                    f"count(carbonscope_job_running{NODES} == 1) or vector(0)",
                    "running jobs",
                    ref="C",
                ),
                width=24,
            ).override_by_name(
                "running jobs",
                [
                    DynamicConfigValue(id_val="unit", value=COUNT),
                    DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                    DynamicConfigValue(id_val="custom.drawStyle", value="bars"),
                ],
            )
        )
    )


DESCRIPTIONS = {
    "Top jobs by energy": "The ten jobs that used the most kWh over the range, with their "
    "name, user and team (from carbonscope_job_info).",
    "Top jobs by emissions (location-based)": "The ten jobs with the most gCO2e over the range.",
    "Top users by energy": "kWh over the range by the jobs' user.",
    "Top users by emissions": "gCO2e over the range by the jobs' user.",
    "Top teams by energy": "kWh over the range by the jobs' team tag.",
    "Top teams by emissions": "gCO2e over the range by the jobs' team tag.",
    "Running jobs": "Jobs running now, on the chosen nodes.",
    "Power of job $job_id by component": "The chosen job's power by component, idle share "
    "included (jobs.idle_policy).",
    "Jobs: kWh and gCO2e, linked to their node": "Every job's kWh and location-based gCO2e "
    "over the range; a row links to its node's dashboard.",
    "When jobs ran against the grid's intensity (carbon-aware scheduling)": "The grid "
    "intensity and its forecast, with the number of running jobs (bars, right axis): work "
    "moved to the greener hours shows here.",
}
