"""The pumping simulation's traffic model (``bench/pumping.py``) has the shape issue 8 asks for.

Only the pure generator runs here, at a small size; the simulation itself drives the real
detector over Redis and takes a minute or two, so it is run by hand (see its docstring).
"""

from __future__ import annotations

from collections import Counter

import phonenumbers
import pytest

from bench import pumping

SIZE = 1500


@pytest.fixture(scope="module")
def traffic() -> pumping.Traffic:
    return pumping.generate(seed=3, legit_flows=SIZE)


def test_legitimate_flows_cover_many_ranges_and_countries(traffic: pumping.Traffic) -> None:
    assert len(traffic.flows) == SIZE
    assert len(traffic.ranges) >= 200
    assert len({item.region for item in traffic.ranges}) >= 10
    assert len({flow.range[:4] for flow in traffic.flows}) >= 10
    assert all(0.6 <= item.conversion <= 0.9 for item in traffic.ranges)


def test_every_number_is_a_valid_mobile_number_of_its_range(traffic: pumping.Traffic) -> None:
    numbers = [flow.number for flow in traffic.flows]
    numbers += [number for attack in traffic.attacks for _, number in attack.numbers]
    assert len(set(numbers)) == len(numbers)
    for flow in traffic.flows:
        assert flow.number.startswith(flow.range)
    for number in numbers:
        parsed = phonenumbers.parse(number, None)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.number_type(parsed) in pumping.MOBILE_TYPES, number


def test_users_type_codes_minutes_after_the_sms_and_most_convert(
    traffic: pumping.Traffic,
) -> None:
    converting = [flow for flow in traffic.flows if flow.checks]
    assert 0.6 <= len(converting) / len(traffic.flows) <= 0.9
    for flow in converting:
        assert flow.checks[-1][1]  # the last code typed is the right one
        delays = [at - flow.at for at, _ in flow.checks]
        assert delays == sorted(delays)
        assert 4 * pumping.SECOND <= delays[0] <= 150 * pumping.SECOND


def test_a_surge_and_a_new_tenant_launch(traffic: pumping.Traffic) -> None:
    surge = [flow for flow in traffic.flows if flow.surge]
    assert surge
    assert all(flow.number.startswith("+49") for flow in surge)
    assert all(
        pumping.SURGE_START <= flow.at < pumping.SURGE_START + pumping.HOUR for flow in surge
    )
    launch = [flow.at - traffic.new_tenant_at for flow in traffic.flows if flow.tenant == "new"]
    assert launch
    assert all(0 <= offset < pumping.HOUR for offset in launch)
    # A burst: the first quarter hour holds far more than a quarter of the launch hour.
    assert sum(offset < 15 * pumping.MINUTE for offset in launch) > len(launch) / 2


def test_attacks_narrow_and_spread_fast_and_slow_one_on_the_new_tenant(
    traffic: pumping.Traffic,
) -> None:
    attacks = traffic.attacks
    assert len(attacks) >= 4
    assert {attack.spec.spread for attack in attacks} == {True, False}
    intervals = [attack.spec.interval for attack in attacks]
    assert any(high <= pumping.SECOND for _, high in intervals)  # several per second
    assert any(low >= pumping.MINUTE for low, _ in intervals)  # one every minute or two
    on_new = [attack for attack in attacks if attack.spec.tenant == "new"]
    assert any(
        traffic.new_tenant_at <= attack.numbers[0][0] < traffic.new_tenant_at + pumping.HOUR
        for attack in on_new
    )
    for attack in attacks:
        assert all(number.startswith(attack.sub_ranges) for _, number in attack.numbers)
        if attack.spec.spread:
            assert len(attack.sub_ranges) >= 5
            assert all(sub[:-1] == attack.target for sub in attack.sub_ranges)


def test_requests_are_in_time_order_and_pumped_numbers_never_check(
    traffic: pumping.Traffic,
) -> None:
    times = [event.at for event in traffic.events]
    assert times == sorted(times)
    kinds = Counter(event.kind for event in traffic.events)
    assert kinds["start"] == SIZE
    assert kinds["attack"] == sum(len(attack.numbers) for attack in traffic.attacks)
    assert kinds["check"] == sum(len(flow.checks) for flow in traffic.flows)
    first_start = {}
    for event in traffic.events:
        if event.kind == "start":
            first_start[event.index] = event.at
        elif event.kind == "check":
            assert event.index in first_start  # a code is typed after its SMS was asked for
