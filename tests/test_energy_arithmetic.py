"""Counter deltas, wraps, resets and power integration: exact integers, never negative."""

import pytest

from carbonscope.accounting.emissions import grams
from carbonscope.accounting.energy import CounterEvent, DeviceAccount, counter_delta_uj
from carbonscope.sensors.base import Component, CounterReading, DeviceKey, PowerKind, PowerReading

KEY = DeviceKey(Component.CPU, "package-0", "rapl")
S = 1_000_000_000  # ns
MAX_RANGE = 262_143_328_850
PLAUSIBLE_UW = 2_000_000_000  # 2 kW


def test_increase_is_the_plain_difference() -> None:
    assert counter_delta_uj(100, 350, MAX_RANGE, S, PLAUSIBLE_UW) == (250, CounterEvent.NONE)


@pytest.mark.faults
def test_wrap_counts_the_energy_on_both_sides_of_the_range() -> None:
    # 240 W for 1 s across the wrap point: 40 J before it, 200 J after (counter restarts at 0).
    previous = MAX_RANGE - 40_000_000 + 1
    delta, event = counter_delta_uj(previous, 200_000_000 - 1, MAX_RANGE, S, PLAUSIBLE_UW)
    assert event is CounterEvent.WRAP
    assert delta == 240_000_000 - 1


@pytest.mark.faults
def test_drop_with_no_plausible_wrap_is_a_reset_counting_nothing() -> None:
    # From 100 J down to 5 J in one second: a wrap would mean ~262 kJ in 1 s (262 kW).
    assert counter_delta_uj(100_000_000, 5_000_000, MAX_RANGE, S, PLAUSIBLE_UW) == (
        0,
        CounterEvent.RESET,
    )


def test_account_after_reset_counts_from_the_new_value() -> None:
    account = DeviceAccount()
    for now, value in [(0, 500_000_000), (S, 600_000_000), (2 * S, 1_000_000), (3 * S, 51_000_000)]:
        account.add_counter(CounterReading(KEY, value, MAX_RANGE), now, PLAUSIBLE_UW)
    assert account.total_uj == 100_000_000 + 0 + 50_000_000
    assert (account.resets, account.wraps) == (1, 0)


def test_constant_power_integrates_exactly_with_the_remainder_carried() -> None:
    account = DeviceAccount()
    # 3 uW over three 333,333,333 ns steps, then the last 1 ns of the second: exactly 3 uJ.
    third = S // 3
    reading = PowerReading(KEY, 3, PowerKind.INTERVAL_MEAN)
    account.add_power(reading, 0)
    deltas = [account.add_power(reading, third * i) for i in range(1, 4)]
    assert deltas == [0, 1, 1]  # 0.999.. uJ, 1.999.. uJ, 2.999.. uJ: the carry is never lost
    assert account.total_uj == 2
    account.add_power(reading, S)
    assert account.total_uj == 3


def test_instant_power_uses_the_trapezoid_rule() -> None:
    account = DeviceAccount()
    account.add_power(PowerReading(KEY, 100_000_000, PowerKind.INSTANT), 0)
    account.add_power(PowerReading(KEY, 300_000_000, PowerKind.INSTANT), 2 * S)
    assert account.total_uj == 400_000_000  # mean 200 W for 2 s


def test_interval_mean_power_is_power_times_elapsed() -> None:
    account = DeviceAccount()
    account.add_power(PowerReading(KEY, 50_000_000, PowerKind.INTERVAL_MEAN), 0)
    account.add_power(PowerReading(KEY, 80_000_000, PowerKind.INTERVAL_MEAN), S // 2)
    assert account.total_uj == 40_000_000  # the 80 W read covers the last half second


def test_grams_is_kwh_times_pue_times_intensity() -> None:
    one_kwh_uj = 3_600_000_000_000
    assert grams(one_kwh_uj, 400.0, 1.5) == 600.0


def counter_run(values: list[int], step_ns: int = S) -> DeviceAccount:
    account = DeviceAccount()
    for index, value in enumerate(values):
        account.add_counter(CounterReading(KEY, value, MAX_RANGE), index * step_ns, PLAUSIBLE_UW)
    return account


@pytest.mark.faults
def test_a_value_outside_the_counter_range_is_an_error_reading_that_counts_nothing() -> None:
    account = counter_run([100_000_000, MAX_RANGE + 1, 10**26, -5, 150_000_000])
    assert account.total_uj == 50_000_000  # from the last good value, as if they never came
    assert account.events == {CounterEvent.INVALID: 3}


@pytest.mark.faults
def test_a_jump_no_plausible_power_explains_is_held_and_a_return_costs_nothing() -> None:
    # 200 kJ in 0.2 s (1 MW), then the counter is back on its trajectory
    account = counter_run([100_000_000, 200_100_000_000, 200_000_000], step_ns=S // 5)
    assert account.total_uj == 100_000_000
    assert account.events == {CounterEvent.REJECTED: 1}


@pytest.mark.faults
def test_a_transient_zero_is_a_glitch_not_a_reset_that_recounts_the_whole_counter() -> None:
    account = counter_run([150_001_000_000, 0, 150_002_000_000])
    assert account.total_uj == 1_000_000  # 1 J over two seconds, not +150,001 J
    assert account.events == {CounterEvent.REJECTED: 1}


@pytest.mark.faults
def test_a_jump_that_persists_is_re_based_and_energy_resumes_exactly() -> None:
    # firmware re-bases the counter: 100 J -> 90,000 J and it goes on from there
    account = counter_run([100_000_000, 90_000_000_000, 90_050_000_000, 90_120_000_000])
    assert account.total_uj == 50_000_000 + 70_000_000  # the interval of the jump counts nothing
    assert account.events == {CounterEvent.REJECTED: 1, CounterEvent.RESET: 1}
    assert account.resets == 1
