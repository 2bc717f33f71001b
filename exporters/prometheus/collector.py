"""Metric families of the contract (docs/metrics.md), built from one immutable snapshot."""

from __future__ import annotations

from collections.abc import Iterator

from carbonscope.exporters.prometheus.grid import feed_metrics, histogram_family
from carbonscope.exporters.prometheus.text import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    exposition,
)
from carbonscope.snapshot import (
    COUNTER_EVENTS,
    MARGINAL,
    UJ_PER_J,
    AttributionView,
    Bucket,
    Snapshot,
    SourceStatus,
)

DEVICE_LABELS = ["component", "device", "source"]


class SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        yield from self._devices(snap)
        yield from self._node(snap)
        yield from self._carbon(snap)
        yield from self._sources(snap)
        if snap.gpus:
            yield from self._gpus(snap)
        if snap.attribution is not None:
            yield from self._attribution(snap.attribution, snap.embodied_g is not None)
        yield from self._self_metrics(snap)

    @staticmethod
    def _devices(snap: Snapshot) -> Iterator[Metric]:
        energy = CounterMetricFamily(
            "carbonscope_energy_joules",
            "Energy per measured or modelled device since the agent started, wrap-corrected.",
            labels=DEVICE_LABELS,
        )
        power = GaugeMetricFamily(
            "carbonscope_power_watts",
            "Mean power per device over the last sampling interval.",
            labels=DEVICE_LABELS,
        )
        events = CounterMetricFamily(
            "carbonscope_energy_reading_events",
            "Energy counter events per device: wrap (counted across), reset (re-based, counted "
            "from the new value), rejected (implausible read held, not counted), invalid "
            "(outside the counter's range).",
            labels=["source", "device", "event"],
        )
        for device in snap.devices:
            labels = [device.key.component.value, device.key.device, device.key.source]
            energy.add_metric(labels, device.energy_uj / UJ_PER_J)
            if device.power_w is not None:
                power.add_metric(labels, device.power_w)
            if device.is_counter:
                counts = dict(device.counter_events)
                for event in COUNTER_EVENTS:
                    events.add_metric(
                        [device.key.source, device.key.device, event.value], counts.get(event, 0)
                    )
        yield energy
        yield power
        yield events
        counted = GaugeMetricFamily(
            "carbonscope_node_energy_source_info",
            "The devices node energy is the sum of (psys and the GPUs, or the packages, DRAM "
            "and GPUs; with a wall or PSU meter, also the part they leave unmeasured, "
            'source="reconciled"): join on source and device to split node energy by '
            "component without counting a joule twice.",
            labels=["source", "device"],
        )
        for device in snap.devices:
            if device.in_node_energy:
                counted.add_metric([device.key.source, device.key.device], 1)
        yield counted
        if snap.node_energy_meter is not None:
            meter = snap.node_energy_meter
            follows = GaugeMetricFamily(
                "carbonscope_node_energy_meter_info",
                "The platform meter (wall or PSU) node energy follows: the components plus "
                "the unmeasured part equal its energy at each of its readings.",
                labels=["source", "device"],
            )
            follows.add_metric([meter.source, meter.device], 1)
            yield follows

    @staticmethod
    def _node(snap: Snapshot) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "carbonscope_node_energy_joules",
            "The node's IT energy since the agent started, each joule counted once.",
            value=snap.node_energy_uj / UJ_PER_J,
        )
        if snap.node_power_w is not None:
            yield GaugeMetricFamily(
                "carbonscope_node_power_watts",
                "Mean node IT power over the last sampling interval.",
                value=snap.node_power_w,
            )

    @staticmethod
    def _carbon(snap: Snapshot) -> Iterator[Metric]:
        if snap.embodied_g is not None:
            yield CounterMetricFamily(
                "carbonscope_embodied_grams",
                "The hardware's manufacturing footprint amortised over its life ([embodied]), "
                "so far: Scope 3, never part of carbonscope_emissions_grams_total.",
                value=snap.embodied_g,
            )
        feed = snap.feed
        emissions = CounterMetricFamily(
            "carbonscope_emissions_grams",
            "Node emissions in gCO2e: IT energy x PUE x grid intensity at each sample. "
            'method="marginal" only with a marginal signal, never part of Scope 2.',
            labels=["method"],
        )
        emissions.add_metric(["location"], snap.emissions.location_g)
        emissions.add_metric(["market"], snap.emissions.market_g)
        if feed is not None and feed.signal == MARGINAL:
            emissions.add_metric(["marginal"], snap.emissions.marginal_g)
        yield emissions
        in_force = [snap.intensity]
        if snap.marginal_intensity is not None:
            in_force.append(snap.marginal_intensity)
        gauge = GaugeMetricFamily(
            "carbonscope_grid_intensity_grams_per_kwh",
            "Grid carbon intensity in force now, gCO2e/kWh.",
            labels=["location", "provider", "signal"],
        )
        info = GaugeMetricFamily(
            "carbonscope_grid_intensity_info",
            "The intensity in force and its emission factor type (lifecycle, direct, "
            "unspecified): values of different types or signals are not comparable.",
            labels=["location", "provider", "signal", "emission_factor_type"],
        )
        for value in in_force:
            gauge.add_metric([value.location, value.provider, value.signal], value.g_per_kwh)
            info.add_metric(
                [value.location, value.provider, value.signal, value.emission_factor_type], 1
            )
        yield gauge
        yield info
        intensity = snap.intensity
        location = GaugeMetricFamily(
            "carbonscope_grid_location_info",
            "The grid location in force and how it was chosen "
            "(config, timezone, default, provider).",
            labels=["location", "resolved_by"],
        )
        location.add_metric([intensity.location, intensity.resolved_by], 1)
        yield location
        if snap.market_factor_g_per_kwh is not None:
            yield GaugeMetricFamily(
                "carbonscope_market_factor_grams_per_kwh",
                "Contractual emission factor used for market-based Scope 2, gCO2e/kWh.",
                value=snap.market_factor_g_per_kwh,
            )
        yield GaugeMetricFamily(
            "carbonscope_pue_ratio", "Power usage effectiveness in force.", value=snap.pue
        )
        age = GaugeMetricFamily(
            "carbonscope_intensity_age_seconds",
            "Age of the intensity value in force; with a live provider, of its newest value "
            "(still growing while the static fallback is in force).",
            labels=["provider"],
        )
        if feed is None:
            age.add_metric([intensity.provider], intensity.age_s)
        elif feed.last_value is not None:
            age.add_metric([feed.provider], feed.last_value.age_s)
        yield age
        if feed is not None:
            yield from feed_metrics(feed, snap.taken_at_unix_s)

    @staticmethod
    def _sources(snap: Snapshot) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "carbonscope_source_up",
            "1 if the source was read in the last sample.",
            labels=["source", "device"],
        )
        status = GaugeMetricFamily(
            "carbonscope_source_status",
            "State set: why a source reads what it reads (1 on the current status).",
            labels=["source", "device", "status"],
        )
        for entry in snap.statuses:
            up.add_metric([entry.source, entry.device], 1 if entry.status is SourceStatus.OK else 0)
            for candidate in SourceStatus:
                status.add_metric(
                    [entry.source, entry.device, candidate.value],
                    1 if candidate is entry.status else 0,
                )
        yield up
        yield status
        if snap.skipped:
            skipped = GaugeMetricFamily(
                "carbonscope_source_skipped_devices",
                "Devices a source found and does not count, by reason (inside_package: core and "
                "uncore zones; duplicate: an mmio counter repeating a package; unreadable).",
                labels=["source", "reason"],
            )
            for source, reason, count in snap.skipped:
                skipped.add_metric([source, reason], count)
            yield skipped
        if snap.model_uncertainty:
            uncertainty = GaugeMetricFamily(
                "carbonscope_model_uncertainty_ratio",
                "Relative half-width of a modelled figure (0.4 = +-40 %), from the spread of the "
                "published coefficients (docs/sensors.md).",
                labels=["component"],
            )
            for component, ratio in snap.model_uncertainty:
                uncertainty.add_metric([component.value], ratio)
            yield uncertainty

    @staticmethod
    def _gpus(snap: Snapshot) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "carbonscope_gpu_info",
            "GPU identity and how its energy is obtained (counter or integrated power).",
            labels=["device", "uuid", "model", "energy_method"],
        )
        limit = GaugeMetricFamily(
            "carbonscope_gpu_power_limit_watts", "Enforced GPU power limit.", labels=["device"]
        )
        utilization = GaugeMetricFamily(
            "carbonscope_gpu_utilization_ratio",
            "Share of the last sample period the GPU was busy (0..1; absent in MIG mode).",
            labels=["device"],
        )
        memory_used = GaugeMetricFamily(
            "carbonscope_gpu_memory_used_bytes", "GPU memory in use.", labels=["device"]
        )
        memory_total = GaugeMetricFamily(
            "carbonscope_gpu_memory_total_bytes", "GPU memory installed.", labels=["device"]
        )
        processes = GaugeMetricFamily(
            "carbonscope_gpu_processes", "Compute processes running on the GPU.", labels=["device"]
        )
        mig = GaugeMetricFamily(
            "carbonscope_gpu_mig_instance_info",
            "MIG instances of a GPU in MIG mode (energy stays per physical GPU).",
            labels=["device", "mig_uuid"],
        )
        for gpu in snap.gpus:
            info.add_metric([gpu.device, gpu.uuid, gpu.model, gpu.energy_method], 1)
            processes.add_metric([gpu.device], len(gpu.processes))
            for family, value in (
                (limit, gpu.power_limit_w),
                (utilization, gpu.utilization_ratio),
                (memory_used, gpu.memory_used_bytes),
                (memory_total, gpu.memory_total_bytes),
            ):
                if value is not None:
                    family.add_metric([gpu.device], value)
            for mig_uuid in gpu.mig_instances:
                mig.add_metric([gpu.device, mig_uuid], 1)
        yield from (info, limit, utilization, memory_used, memory_total, processes, mig)

    @staticmethod
    def _attribution(view: AttributionView, embodied_on: bool) -> Iterator[Metric]:
        attributed = CounterMetricFamily(
            "carbonscope_attributed_energy_joules",
            "Where each component's energy went: jobs, system (busy, no job) or idle. "
            "The buckets of a component sum to its energy.",
            labels=["component", "bucket"],
        )
        by_key = {(entry.component, entry.bucket): entry.energy_uj for entry in view.buckets}
        for component in sorted({component for component, _bucket in by_key}):
            for bucket in Bucket:
                attributed.add_metric(
                    [component.value, bucket.value], by_key.get((component, bucket), 0) / UJ_PER_J
                )
        yield attributed
        energy = CounterMetricFamily(
            "carbonscope_job_energy_joules",
            "Energy attributed to a job, per node-energy component.",
            labels=["job_id", "component"],
        )
        idle = CounterMetricFamily(
            "carbonscope_job_idle_energy_joules",
            "The idle share inside a job's energy (jobs.idle_policy); the rest is its active "
            "energy.",
            labels=["job_id", "component"],
        )
        emissions = CounterMetricFamily(
            "carbonscope_job_emissions_grams",
            "Emissions attributed to a job: its energy x PUE x intensity at each sample.",
            labels=["job_id", "method"],
        )
        info = GaugeMetricFamily(
            "carbonscope_job_info",
            "Descriptive labels of a job (promoted tags as tag_<key>), joined by job_id.",
            labels=["job_id", "job_name", "user", *view.info_labels],
        )
        running = GaugeMetricFamily(
            "carbonscope_job_running",
            "1 while the job runs, 0 once finished (kept for jobs.keep_finished).",
            labels=["job_id"],
        )
        embodied = CounterMetricFamily(
            "carbonscope_job_embodied_grams",
            "A job's share of the hardware's amortised manufacturing footprint (Scope 3, "
            "[embodied]): by the share of the node it holds and the GPUs it uses. Never part "
            "of carbonscope_job_emissions_grams_total.",
            labels=["job_id"],
        )
        for job in view.jobs:
            embodied.add_metric([job.job_id], job.totals.embodied_g)
            idle_uj = dict(job.totals.idle_uj)
            for component, uj in job.totals.energy_uj:
                energy.add_metric([job.job_id, component.value], uj / UJ_PER_J)
                idle.add_metric([job.job_id, component.value], idle_uj.get(component, 0) / UJ_PER_J)
            emissions.add_metric([job.job_id, "location"], job.totals.emissions.location_g)
            emissions.add_metric([job.job_id, "market"], job.totals.emissions.market_g)
            info.add_metric([job.job_id, job.name, job.user, *job.info_values], 1)
            running.add_metric([job.job_id], 1 if job.running else 0)
        yield from (energy, idle, emissions, info, running)
        if embodied_on:
            yield embodied

    @staticmethod
    def _self_metrics(snap: Snapshot) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "carbonscope_samples", "Sampling ticks done.", value=snap.samples_total
        )
        yield CounterMetricFamily(
            "carbonscope_samples_missed",
            "Sampling ticks skipped (late or overrun); their energy is in the next sample.",
            value=snap.samples_missed_total,
        )
        yield histogram_family(
            "carbonscope_sample_duration_seconds",
            "Time one sample took: reading every source and the accounting.",
            snap.sample_duration,
        )
        if snap.ledger is not None:
            writes = CounterMetricFamily(
                "carbonscope_ledger_writes",
                "Ledger transactions (job flushes, intensity flushes), by result.",
                labels=["result"],
            )
            writes.add_metric(["ok"], snap.ledger.ok)
            writes.add_metric(["error"], snap.ledger.error)
            yield writes
            if snap.ledger.last_success_unix_s is not None:
                yield GaugeMetricFamily(
                    "carbonscope_ledger_last_success_timestamp_seconds",
                    "When the ledger last took a write (unix seconds).",
                    value=snap.ledger.last_success_unix_s,
                )
        info = GaugeMetricFamily("carbonscope_build_info", "carbonscope build.", labels=["version"])
        info.add_metric([snap.version], 1)
        yield info


def render(snapshot: Snapshot) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    return exposition(SnapshotCollector(snapshot).collect())
