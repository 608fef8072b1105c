"""The pure half of crons: schedules, their next tick, timezones and end
times, without a database. The scheduler's tests
(``tests/resources/test_scheduler.py``) cover the summer/winter offset and
the first refusals; these add the rest, daylight saving changes included.

Refusals are asserted by their ``field``, ``problem`` and message, not by
their class (``ValueError`` is the builtin they all derive from)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pgqueue.resources import crons

NY = "America/New_York"
PARIS = "Europe/Paris"


def refusal(call: Callable[..., object], *args: object) -> Any:
    """The ValueError ``call(*args)`` raises (typed Any: its class, and so
    the declared type of ``field`` and ``problem``, is not this test's
    business)."""
    with pytest.raises(ValueError) as caught:
        call(*args)
    return caught.value


def ticks(schedule: str, after: datetime, n: int, tz: str | None = None) -> list[datetime]:
    out = []
    for _ in range(n):
        after = crons.next_run(schedule, after, tz)
        out.append(after)
    return out


# -- check_schedule ----------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    ["* * * * *", "*/15 * * * *", "0 9 * * 1-5", "0 0 1,15 * *", "0 0 * JAN MON", "0 0 * * 7"],
)
def test_five_field_schedules_are_accepted_as_written(schedule: str) -> None:
    assert crons.check_schedule(schedule) == schedule
    assert crons.check_schedule(f"  {schedule}\n") == schedule


@pytest.mark.parametrize(
    "alias", ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"]
)
def test_aliases_are_accepted(alias: str) -> None:
    assert crons.check_schedule(alias) == alias


def test_aliases_mean_what_cron_means() -> None:
    after = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)  # a Wednesday
    assert crons.next_run("@hourly", after) == datetime(2026, 7, 1, 13, 0, tzinfo=UTC)
    assert crons.next_run("@daily", after) == datetime(2026, 7, 2, 0, 0, tzinfo=UTC)
    assert crons.next_run("@weekly", after) == datetime(2026, 7, 5, 0, 0, tzinfo=UTC)  # Sunday
    assert crons.next_run("@monthly", after) == datetime(2026, 8, 1, 0, 0, tzinfo=UTC)
    assert crons.next_run("@yearly", after) == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "schedule",
    ["0 0 1 1 * 2030", "0 0 0 1 1 * 2030", "* * * * * * * *", "*", "@hourly *"],
)
def test_other_field_counts_are_refused(schedule: str) -> None:
    # croniter would take 6 fields (seconds) and 7 (years); pgqueue's
    # schedules are minute-grained, as the platform's are.
    error = refusal(crons.check_schedule, schedule)
    assert error.field == "schedule"
    assert str(error).startswith("schedule: ")


def test_six_fields_say_what_five_would_be() -> None:
    error = refusal(crons.check_schedule, "0 0 1 1 * 2030")
    problem = error.problem
    assert "has 6 fields; expected 5" in problem
    assert "minute hour day-of-month month day-of-week" in problem
    assert "@hourly" in problem


@pytest.mark.parametrize(
    "schedule",
    ["60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "a b c d e", "@reboot"],
)
def test_invalid_expressions_are_refused(schedule: str) -> None:
    error = refusal(crons.check_schedule, schedule)
    assert error.field == "schedule"
    assert error.problem == f"{schedule!r} is not a valid cron expression"


@pytest.mark.parametrize("schedule", ["   ", "\t\n"])
def test_blank_schedules_are_refused(schedule: str) -> None:
    error = refusal(crons.check_schedule, schedule)
    assert (error.field, error.problem) == ("schedule", "must not be empty")


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4 *", "0 0 31 11 *"])
def test_dates_that_never_come_are_refused(schedule: str) -> None:
    error = refusal(crons.check_schedule, schedule)
    assert error.field == "schedule"
    assert error.problem.startswith(f"{schedule!r} cannot be scheduled")


def test_february_29th_comes_in_leap_years() -> None:
    assert crons.check_schedule("0 0 29 2 *") == "0 0 29 2 *"
    after = datetime(2026, 3, 1, tzinfo=UTC)
    assert ticks("0 0 29 2 *", after, 2) == [
        datetime(2028, 2, 29, tzinfo=UTC),
        datetime(2032, 2, 29, tzinfo=UTC),
    ]


# -- next_run ------------------------------------------------------------------


def test_the_next_tick_is_strictly_after() -> None:
    nine = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert crons.next_run("0 9 * * *", nine) == nine + timedelta(days=1)
    assert crons.next_run("0 9 * * *", nine - timedelta(microseconds=1)) == nine
    assert crons.next_run("*/15 * * * *", nine) == nine + timedelta(minutes=15)


def test_the_answer_is_in_utc_whatever_the_offset_of_after() -> None:
    # 08:59 UTC given as 17:59 in Tokyo: the tick is 09:00 UTC that day.
    tokyo = datetime(2026, 7, 1, 17, 59, tzinfo=ZoneInfo("Asia/Tokyo"))
    fire = crons.next_run("0 9 * * *", tokyo)
    assert fire == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert fire.utcoffset() == timedelta(0)
    offset = datetime(2026, 7, 1, 10, 59, tzinfo=timezone(timedelta(hours=2)))
    assert crons.next_run("0 9 * * *", offset) == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_in_a_timezone_every_tick_follows_the_local_clock() -> None:
    after = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
    # 09:00 in Paris is 07:00 UTC in summer.
    assert ticks("0 9 * * *", after, 2, PARIS) == [
        datetime(2026, 7, 1, 7, 0, tzinfo=UTC),
        datetime(2026, 7, 2, 7, 0, tzinfo=UTC),
    ]
    # A zone with a half-hour offset.
    assert crons.next_run("0 9 * * *", after, "Asia/Kolkata") == datetime(
        2026, 7, 1, 3, 30, tzinfo=UTC
    )


def test_a_daily_tick_keeps_its_local_hour_across_the_spring_change() -> None:
    # New York moves from EST (-5) to EDT (-4) at 02:00 on 8 March 2026.
    after = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    assert ticks("0 9 * * *", after, 3, NY) == [
        datetime(2026, 3, 7, 14, 0, tzinfo=UTC),  # 09:00 EST
        datetime(2026, 3, 8, 13, 0, tzinfo=UTC),  # 09:00 EDT
        datetime(2026, 3, 9, 13, 0, tzinfo=UTC),
    ]
    # Without a timezone the same schedule stays at 09:00 UTC.
    assert ticks("0 9 * * *", after, 3)[1] == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)


def test_a_daily_tick_keeps_its_local_hour_across_the_autumn_change() -> None:
    # Paris moves from CEST (+2) to CET (+1) at 03:00 on 25 October 2026.
    after = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    assert ticks("0 9 * * *", after, 3, PARIS) == [
        datetime(2026, 10, 24, 7, 0, tzinfo=UTC),  # 09:00 CEST
        datetime(2026, 10, 25, 8, 0, tzinfo=UTC),  # 09:00 CET
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
    ]


def test_an_hourly_schedule_ticks_every_real_hour_through_both_changes() -> None:
    # Spring: 01:00 EST is followed by 03:00 EDT, one hour later.
    spring = ticks("0 * * * *", datetime(2026, 3, 8, 5, 30, tzinfo=UTC), 4, NY)
    assert [t - spring[0] for t in spring] == [timedelta(hours=h) for h in range(4)]
    # Autumn: 01:00 comes twice in New York; each is a tick of its own.
    autumn = ticks("0 * * * *", datetime(2026, 11, 1, 4, 30, tzinfo=UTC), 4, NY)
    assert autumn[0] == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT
    assert [t - autumn[0] for t in autumn] == [timedelta(hours=h) for h in range(4)]
    assert len(set(autumn)) == 4


def test_a_tick_in_the_skipped_hour_still_fires_that_day() -> None:
    # 02:30 does not exist in New York on 8 March 2026; the tick is not lost.
    fires = ticks("30 2 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=UTC), 3, NY)
    local = [f.astimezone(ZoneInfo(NY)) for f in fires]
    assert [d.date().day for d in local] == [8, 9, 10]
    assert fires == sorted(fires)
    assert local[1].time().isoformat() == "02:30:00"


def test_a_schedule_that_never_fires_is_refused_by_next_run_too() -> None:
    error = refusal(crons.next_run, "0 0 30 2 *", datetime(2026, 1, 1, tzinfo=UTC))
    assert error.field == "schedule"
    assert "cannot be scheduled" in str(error)


# -- zone ----------------------------------------------------------------------


def test_zone() -> None:
    assert crons.zone(None) is None
    assert crons.zone(PARIS) == ZoneInfo(PARIS)
    assert crons.zone("UTC") == ZoneInfo("UTC")


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus",
        "",
        "utc",
        "Europe",
        "America/Argentina",
        "Europe/Paris ",
        "../etc/passwd",
        "/etc/localtime",
        "Europe/\x00",
    ],
)
def test_unknown_zones_are_refused_by_name(name: str) -> None:
    error = refusal(crons.zone, name)
    assert error.field == "timezone"
    assert error.problem == (f"{name!r} is not an IANA timezone (e.g. 'Europe/Paris')")


def test_next_run_refuses_an_unknown_zone() -> None:
    error = refusal(crons.next_run, "0 9 * * *", datetime(2026, 7, 1, tzinfo=UTC), "Nowhere/Town")
    assert error.field == "timezone"


# -- aware -----------------------------------------------------------------------


def test_a_timestamp_without_offset_is_read_as_utc() -> None:
    naive = datetime(2026, 7, 1, 12, 0)
    assert crons.aware(naive) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert crons.aware(naive).tzinfo is UTC


def test_a_timestamp_with_an_offset_is_kept_as_it_is() -> None:
    paris = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo(PARIS))
    assert crons.aware(paris) is paris
    fixed = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert crons.aware(fixed) is fixed
    assert crons.aware(fixed) == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
