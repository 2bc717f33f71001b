"""The source catalogue is the one list: config sections, sensors.enable and selection read it;
the exporter table and the snapshot relay."""

from __future__ import annotations

import threading
from pathlib import Path

from carbonscope.config.schema import Config, SensorsSection
from carbonscope.daemon.exporters import EXPORTERS
from carbonscope.sampling.publisher import SnapshotRelay
from carbonscope.sensors.base import SensorRoots, SourceSettings
from carbonscope.sensors.catalogue import SOURCES, SourceContext, SourceRole, spec_of
from carbonscope.sensors.selection import select_sensors
from carbonscope.snapshot import Snapshot


def test_every_catalogue_source_has_its_config_section_and_enable_name() -> None:
    config = Config()
    for spec in SOURCES:
        section = config.sensors.source_settings(spec.name)
        assert isinstance(section, spec.settings) and isinstance(section, SourceSettings)
        assert SensorsSection(enable=[spec.name]).enable == [spec.name]
    assert (
        Config.model_validate({"sensors": {"model": {"cpu_tdp_watts": 95}}})
        .sensors.source_settings("model")
        .cpu_tdp_watts
        == 95.0
    )
    assert {spec.role for spec in SOURCES} == {SourceRole.MEASURES, SourceRole.MODELS}
    assert spec_of("nvml").components == {"gpu"}


def test_probe_mode_builds_every_source_once(tmp_path: Path) -> None:
    def no_driver() -> object:
        raise ImportError("no GPUs in this test")

    context = SourceContext(load_nvml=no_driver)  # type: ignore[arg-type]
    context = SourceContext(
        roots=context.roots.__class__(sysfs=tmp_path, procfs=Path("/proc")),
        load_nvml=no_driver,  # type: ignore[arg-type]
    )
    selected = select_sensors(SensorsSection(enable=["rapl"]), context, everything=True)
    assert [item.spec.name for item in selected] == [spec.name for spec in SOURCES]
    assert all(not item.used for item in selected)  # rapl finds nothing; the others are not wanted
    model = selected[-1]
    assert {key.component for key in model.found.devices} == {"cpu", "dram"}


def test_exporters_come_from_one_table() -> None:
    assert [spec.name for spec in EXPORTERS] == ["prometheus"]
    assert all(spec.enabled(Config()) for spec in EXPORTERS)


def test_a_slow_listener_never_blocks_the_sampler_and_gets_the_newest_snapshot() -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def slow(snapshot: Snapshot) -> None:
        seen.append(snapshot)
        entered.set()
        release.wait(10)

    relay = SnapshotRelay("test-relay", slow)
    relay.start()
    try:
        first, second, third = object(), object(), object()
        relay(first)  # type: ignore[arg-type]
        assert entered.wait(5)  # the listener is now stuck on the first snapshot
        caller = threading.Thread(target=lambda: [relay(second), relay(third)])  # type: ignore[arg-type]
        caller.start()
        caller.join(5)
        assert not caller.is_alive(), "publishing waited for the listener"
        release.set()
        for _ in range(500):
            if len(seen) == 2:
                break
            threading.Event().wait(0.01)
        assert seen == [first, third]  # the second was superseded before it was rendered
    finally:
        release.set()
        relay.stop()


def test_auto_asks_no_bmc_and_a_listed_one_is_asked(tmp_path: Path) -> None:
    """auto tries hwmon (sysfs) but never IPMI or Redfish, which are asked only when listed."""
    context = SourceContext(roots=SensorRoots(sysfs=tmp_path, procfs=Path("/proc")))
    auto = [item.spec.name for item in select_sensors(SensorsSection(), context)]
    assert "hwmon" in auto and "ipmi" not in auto and "redfish" not in auto
    assert not spec_of("ipmi").auto and not spec_of("redfish").auto
    listed = select_sensors(SensorsSection(enable=["redfish"]), context)
    assert [item.spec.name for item in listed] == ["redfish"]
    assert listed[0].found.statuses[0].reason == "no [sensors.redfish] url configured"
