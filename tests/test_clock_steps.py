"""Wall-clock steps (an NTP correction, an operator's `date -s`) change no schedule, no energy:
the real daemon under libfaketime, its wall clock stepped an hour back and an hour forward."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from carbonscope.sampling.schedule import SampleLoop, next_slot
from tests.conftest import IN_CI
from tests.daemon import Daemon
from tests.fakes.powercap import two_socket_server

pytestmark = pytest.mark.faults

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
SAMPLES = ("carbonscope_samples_total", ())
MISSED = ("carbonscope_samples_missed_total", ())
NODE = ("carbonscope_node_energy_joules_total", ())


def test_next_slot_skips_the_slots_that_passed() -> None:
    assert next_slot(100.0, 1.0, 100.2) == 101.0
    assert next_slot(100.0, 1.0, 101.0) == 102.0  # a slot at "now" has passed
    assert next_slot(100.0, 0.5, 103.7) == 104.0  # a tick that overran 3 s skips 6 slots


def test_the_loop_reads_no_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks: list[float] = []
    monkeypatch.setattr(time, "time", lambda: pytest.fail("the schedule read the wall clock"))
    loop = SampleLoop(lambda: ticks.append(time.monotonic()), 0.02)
    loop.start()
    deadline = time.monotonic() + 5
    while len(ticks) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert len(ticks) >= 10


@pytest.mark.e2e
def test_a_wall_clock_step_changes_no_schedule_and_no_energy(tmp_path: Path) -> None:
    if not LIBFAKETIME.exists():
        message = "libfaketime not installed (make test installs Debian's faketime when root)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    tree = two_socket_server(tmp_path / "sys", with_psys=False, with_mmio=False)
    config = tmp_path / "carbonscope.toml"
    config.write_text('[agent]\ninterval = "100ms"\n[sensors]\nenable = ["rapl"]\n')
    daemon = Daemon(
        ["--config", str(config), "--sysfs-root", str(tmp_path / "sys")],
        tmp_path,
        env={
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(offset),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # steps move the wall clock only, as NTP does
        },
    )
    try:
        daemon.wait_ready()
        start = daemon.samples_after(3)
        added_uj = 0
        for step in ("-1h", "+1h", "+0"):
            offset.write_text(step + "\n")
            before = daemon.scrape()
            for zone in tree.zones.values():
                zone.advance(1_000_000)
                if zone.name.startswith(("package", "dram")):  # node energy (core is inside)
                    added_uj += 1_000_000
            time.sleep(1.2)
            after = daemon.scrape()
            # about 12 samples in 1.2 s whatever the wall clock did
            assert after[SAMPLES] - before[SAMPLES] >= 8, (step, before[SAMPLES], after[SAMPLES])
        final = daemon.samples_after(2)
        assert final[MISSED] - start[MISSED] <= 3  # no burst of "missed" ticks at a step
        assert final[NODE] - start[NODE] == pytest.approx(added_uj / 1e6, abs=1e-9)
    finally:
        assert daemon.stop() == 0, daemon.log_text()
