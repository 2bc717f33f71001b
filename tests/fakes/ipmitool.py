"""A fake ``ipmitool`` on PATH: prints what ipmitool 1.8.19 prints for ``dcmi power reading``
(REFERENCE.md), or its failures, as the test sets them; or hangs like a wedged BMC."""

from __future__ import annotations

import os
from pathlib import Path

READING = """
    Instantaneous power reading:                   {watts} Watts
    Minimum during sampling period:                {low} Watts
    Maximum during sampling period:                {high} Watts
    Average power reading over sample period:      {watts} Watts
    IPMI timestamp:                           Thu Jan  1 00:00:00 1970
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated

"""
UNSUPPORTED = (
    "Error getting instantaneous power consumption data: Command not supported on this system.\n"
)
NO_BMC = (
    "Could not open device at /dev/ipmi0 or /dev/ipmi/0 or /dev/ipmidev/0: "
    "No such file or directory\n"
)
DENIED = "Could not open device at /dev/ipmi0 or /dev/ipmi/0 or /dev/ipmidev/0: Permission denied\n"

SCRIPT = """#!/bin/sh
state={state}
[ "$*" = "dcmi power reading" ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}
echo "$*" >> "$state/calls"
[ -f "$state/hang" ] && exec sleep 60
cat "$state/output"
exit "$(cat "$state/rc")"
"""


class FakeIpmitool:
    def __init__(self, directory: Path) -> None:
        self.bin = directory / "bin"
        self.state = directory / "ipmi-state"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.path = self.bin / "ipmitool"
        self.path.write_text(SCRIPT.format(state=self.state))
        self.path.chmod(0o755)
        self.reads(412)

    def _set(self, output: str, rc: int) -> None:
        (self.state / "output").write_text(output)
        (self.state / "rc").write_text(f"{rc}\n")

    def reads(self, watts: int) -> None:
        self._set(READING.format(watts=watts, low=watts - 20, high=watts + 40), 0)

    def fails(self, message: str) -> None:
        self._set(message, 1)

    def hang(self, on: bool = True) -> None:
        flag = self.state / "hang"
        if on:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    @property
    def calls(self) -> int:
        path = self.state / "calls"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def path_env(self) -> str:
        return f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"
