"""Units carbonscope counts in: integer microjoules, microwatts and nanoseconds inside; joules,
watts, seconds and kWh only at the edges (exporters, reports, the job API's JSON)."""

from __future__ import annotations

NS_PER_S = 1_000_000_000
US_PER_S = 1_000_000
UJ_PER_J = 1_000_000
UJ_PER_KWH = 3_600_000_000_000  # 3.6e6 J per kWh
