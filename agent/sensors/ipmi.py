"""IPMI DCMI power reading: the BMC's whole-server (AC) power, through ``ipmitool``.

``<command> dcmi power reading`` prints, among others, ``Instantaneous power reading: 412
Watts`` (ipmitool 1.8.19; REFERENCE.md). The command is configurable (``sudo -n ipmitool``, a
freeipmi wrapper printing the same lines). BMCs hang: each run is killed at ``timeout`` and
the source is polled on its own thread (polled.py), so sampling never waits for it. Failures
are statuses with the reason: no ipmitool, no BMC device, permission denied on /dev/ipmi0,
DCMI not supported or deactivated.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from carbonscope.durations import Duration
from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    DeviceStatus,
    Discovery,
    PowerKind,
    PowerReading,
    SensorRead,
    SourceFailure,
    SourceStatus,
)
from carbonscope.sensors.polled import PolledSettings

SOURCE = "ipmi"
DEVICE = "dcmi"
KEY = DeviceKey(Component.PLATFORM, DEVICE, SOURCE)
ARGUMENTS = ("dcmi", "power", "reading")
_INSTANT = re.compile(r"^\s*Instantaneous power reading\s*:\s*(\d+(?:\.\d+)?)\s*Watts?\b", re.M)
_STATE = re.compile(r"^\s*Power reading state is\s*:\s*(\w+)", re.M)
MAX_OUTPUT_CHARS = 2000  # of an error message kept in a reason


class IpmiSettings(PolledSettings):
    """``[sensors.ipmi]``: the command (split like a shell line), ``interval``, ``timeout``."""

    command: Annotated[str, Field(min_length=1)] = "ipmitool"
    interval: Duration | None = 10.0
    timeout: Duration | None = 5.0


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr together


Runner = Callable[[Sequence[str], float], CommandResult]


def run_command(argv: Sequence[str], timeout_s: float) -> CommandResult:
    """Run ``argv`` with the C locale in a session of its own, never a shell. Past
    ``timeout_s`` the whole session is killed (a wrapper's ipmitool too) and its output is
    not waited for: a hung BMC costs this read, never the poller's thread."""
    import signal  # noqa: PLC0415 - subprocess only with IPMI configured: a plain daemon
    import subprocess  # noqa: PLC0415 - loads neither (its RSS target, docs/performance.md)

    try:
        process = subprocess.Popen(  # argv from the operator's own config, never a shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LC_ALL": "C"},
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise SourceFailure(
            SourceStatus.NOT_PRESENT, f"{argv[0]} not found (install ipmitool): {exc.strerror}"
        ) from exc
    except PermissionError as exc:
        raise SourceFailure(
            SourceStatus.PERMISSION_DENIED, f"cannot run {argv[0]}: {exc.strerror}"
        ) from exc
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=1.0)  # reaps it; a child we may not kill keeps the pipe
        if process.stdout is not None:
            process.stdout.close()
        raise SourceFailure(
            SourceStatus.ERROR, f"{' '.join(argv)} gave no answer in {timeout_s:g}s (BMC hung)"
        ) from exc
    return CommandResult(process.returncode, output.decode("utf-8", errors="replace"))


def parse_power_reading(result: CommandResult) -> float:
    """Watts from ``dcmi power reading``'s output; SourceFailure with the reason otherwise."""
    text = result.output
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    lowered = text.lower()
    if result.returncode != 0 or not _INSTANT.search(text):
        message = " ".join(text.split())[:MAX_OUTPUT_CHARS] or f"exit status {result.returncode}"
        if "permission denied" in lowered or "password is required" in lowered:
            raise SourceFailure(SourceStatus.PERMISSION_DENIED, message)
        if "not supported" in lowered or "invalid command" in lowered:
            raise SourceFailure(SourceStatus.UNSUPPORTED, message)
        if "could not open device" in lowered or "no such file" in lowered:
            raise SourceFailure(SourceStatus.NOT_PRESENT, f"no BMC device: {message}")
        raise SourceFailure(SourceStatus.ERROR, message or first_line)
    state = _STATE.search(text)
    if state is not None and state.group(1).lower() != "activated":
        raise SourceFailure(
            SourceStatus.UNSUPPORTED, f"DCMI power reading is {state.group(1)} on this BMC"
        )
    match = _INSTANT.search(text)
    assert match is not None
    return float(match.group(1))


class IpmiSensor:
    """The BMC's DCMI power reading, as one platform device (``ipmi``/``dcmi``)."""

    name = SOURCE

    def __init__(self, settings: IpmiSettings | None = None, runner: Runner = run_command) -> None:
        settings = settings or IpmiSettings()
        import shlex  # noqa: PLC0415 - as subprocess above

        self._argv = (*shlex.split(settings.command), *ARGUMENTS)
        self._timeout_s = settings.timeout or 5.0
        self._run = runner

    def _watts(self) -> float:
        return parse_power_reading(self._run(self._argv, self._timeout_s))

    def discover(self) -> Discovery:
        try:
            watts = self._watts()
        except SourceFailure as failure:
            return Discovery(statuses=(failure.status_of(SOURCE, DEVICE),))
        return Discovery(
            devices=(KEY,),
            details=(f"{' '.join(self._argv)}: {watts:g} W (whole server, AC)",),
        )

    def read(self) -> SensorRead:
        try:
            watts = self._watts()
        except SourceFailure as failure:
            return SensorRead(statuses=(failure.status_of(SOURCE, DEVICE),))
        return SensorRead(
            readings=(PowerReading(KEY, round(watts * 1_000_000), PowerKind.INSTANT),),
            statuses=(DeviceStatus(SOURCE, DEVICE, SourceStatus.OK),),
        )
