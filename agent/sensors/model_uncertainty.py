"""How sure the power model is: a relative half-width per component (0.4 means ±40 %), from
the spread of the published coefficients for the same quantity (docs/sensors.md).

- CPU on the per-thread budget (VMs, unknown CPUs): the model's ``cpu_watts_per_thread`` at
  full load against Cloud Carbon Footprint's per-architecture watts per vCPU at full load
  (from SPECpower_ssj2008 results), which range from 1.69 W (AMD EPYC 2nd gen, Graviton2) to
  8.58 W (Sandy Bridge): half that range over the value in use.
- CPU on a TDP budget (a known CPU, or ``cpu_tdp_watts``): the ceiling is known, the shape of
  power against load is not. Teads' curve (this model) and Cloud Carbon Footprint's linear
  model, with CCF's average idle/full-load ratio (AWS 0.74/3.5 W, GCP 0.71/4.26 W, Azure
  0.78/3.76 W per vCPU), disagree most at idle, by 0.12 against 0.195 of full-load power: half
  that gap over the curve's value there. How far a CPU's real maximum draw is from its TDP is
  not in this figure.
- DRAM: the model's ``dram_watts_per_gb`` against CodeCarbon 3.x's 5 W per x86 DIMM (its
  RAM_SLOT_POWER_X86), which is 0.078 W/GB on 64 GB DIMMs and 0.625 W/GB on 8 GB ones; Cloud
  Carbon Footprint's 0.392 W/GB and CodeCarbon 2.x's 3 W per 8 GB (0.375) lie inside.
"""

from __future__ import annotations

# Cloud Carbon Footprint (cloud-carbon-footprint/cloud-carbon-footprint, packages/{aws,gcp,
# azure}/src/domain/*CloudConstants ... MAX_WATTS_BY_COMPUTE_PROCESSOR), watts per vCPU.
CCF_MAX_WATTS_PER_VCPU: dict[str, float] = {
    "Cascade Lake": 3.97,
    "Skylake": 4.26,
    "Broadwell": 3.69,
    "Haswell": 4.74,
    "Coffee Lake": 5.42,
    "Sandy Bridge": 8.58,
    "Ivy Bridge": 8.25,
    "AMD EPYC 1st Gen": 2.55,
    "AMD EPYC 2nd Gen": 1.69,
    "AWS Graviton2": 1.69,
}
# (MIN_WATTS_AVG, MAX_WATTS_AVG) per cloud, watts per vCPU (GCP's are medians)
CCF_CLOUD_WATTS_PER_VCPU: dict[str, tuple[float, float]] = {
    "aws": (0.74, 3.5),
    "gcp": (0.71, 4.26),
    "azure": (0.78, 3.76),
}
CCF_MEMORY_WATTS_PER_GB = 0.392  # MEMORY_COEFFICIENT 0.000392 kWh per GB-hour
CODECARBON3_WATTS_PER_DIMM = 5.0  # codecarbon/external/ram.py RAM_SLOT_POWER_X86
DIMM_SIZES_GB = (8, 64)  # the server DIMM sizes that bound CodeCarbon 3's figure per GB


def per_thread_cpu_uncertainty(watts_per_thread: float) -> float:
    low, high = min(CCF_MAX_WATTS_PER_VCPU.values()), max(CCF_MAX_WATTS_PER_VCPU.values())
    return (high - low) / (2 * watts_per_thread)


def curve_cpu_uncertainty(idle_fraction: float) -> float:
    """``idle_fraction``: the model's curve at zero load (a fraction of full-load power)."""
    ratios = [low / high for low, high in CCF_CLOUD_WATTS_PER_VCPU.values()]
    ccf_idle = sum(ratios) / len(ratios)
    return abs(ccf_idle - idle_fraction) / (2 * idle_fraction)


def dram_uncertainty(watts_per_gb: float) -> float:
    smallest, largest = DIMM_SIZES_GB
    low, high = CODECARBON3_WATTS_PER_DIMM / largest, CODECARBON3_WATTS_PER_DIMM / smallest
    return (high - low) / (2 * watts_per_gb) if watts_per_gb > 0 else 0.0
