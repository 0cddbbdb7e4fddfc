"""Schedules: cadence arithmetic (cron in a time zone across DST, intervals, missed runs) and the
ticker against a real engine on a real SQLite file."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pulse_tui.pulse import schedules as S
from pulse_tui.pulse.errors import ValidationError

PARIS = ZoneInfo("Europe/Paris")


def local(ts: float, tz: ZoneInfo = PARIS) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def test_cron_in_a_time_zone_keeps_local_time_across_dst():
    # Europe/Paris springs forward on 2026-03-29 (02:00 -> 03:00) and falls back on 2026-10-25.
    start = datetime(2026, 3, 27, 12, 0, tzinfo=PARIS).timestamp()
    runs = S.cron_runs("0 3 * * *", "Europe/Paris", start, 4)
    assert [local(t).hour for t in runs] == [3, 3, 3, 3]
    assert [round(b - a) for a, b in zip(runs, runs[1:], strict=False)] == [23 * 3600, 24 * 3600, 24 * 3600]
    # 02:30 does not exist on the spring-forward day: it runs once, at 03:00 local
    runs = S.cron_runs("30 2 * * *", "Europe/Paris", start, 3)
    assert [(local(t).day, local(t).hour, local(t).minute) for t in runs] == [
        (28, 2, 30),
        (29, 3, 0),
        (30, 2, 30),
    ]
    # autumn: 02:30 happens twice in local time; the schedule runs once that day
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=PARIS).timestamp()
    runs = S.cron_runs("30 2 * * *", "Europe/Paris", autumn, 3)
    assert [local(t).day for t in runs] == [25, 26, 27]
    # the same expression in UTC does not move
    utc = S.cron_runs("0 3 * * *", "UTC", start, 3)
    assert [round(b - a) for a, b in zip(utc, utc[1:], strict=False)] == [86400, 86400]


def test_interval_advance_keeps_phase_and_counts_missed_runs():
    s = S.Schedule(id="s", handler="h", interval_secs=10)
    assert S.advance(s, 100.0, 100.2) == (110.0, 0)
    assert S.advance(s, 100.0, 135.0) == (140.0, 3)  # due 110, 120, 130 were missed
    c = S.Schedule(id="c", handler="h", cron="*/5 * * * *")
    base = datetime(2026, 1, 1, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    nxt, missed = S.advance(c, base, base + 31 * 60)  # 05 10 15 20 25 30 missed
    assert (nxt - base, missed) == (35 * 60, 6)
    assert S.advance(c, base, base + 1) == (base + 300, 0)


def test_cadence_validation_is_specific():
    assert S.parse_every("90") == 90 and S.parse_every("1h30m") == 5400 and S.parse_every("2d") == 172800
    for bad, msg in [("soon", "not a duration"), ("0s", "at least 1 second"), ("400d", "one-year")]:
        with pytest.raises(ValidationError, match=msg):
            S.parse_every(bad)
    with pytest.raises(ValidationError, match="either an interval or a cron"):
        S.check_cadence(60, "* * * * *", "")
    with pytest.raises(ValidationError, match="needs an interval"):
        S.check_cadence(0, "", "")
    with pytest.raises(ValidationError, match="5 fields"):
        S.check_cadence(0, "* * *", "")
    with pytest.raises(ValidationError, match="not valid"):
        S.check_cadence(0, "61 * * * *", "")
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        S.check_cadence(0, "0 3 * * *", "Mars/Olympus")
    with pytest.raises(ValidationError, match="only applies to a cron"):
        S.check_cadence(60, "", "Europe/Paris")
    assert S.format_interval(5400) == "1h30m"
    assert S.Schedule(id="s", handler="h", cron="0 3 * * *", timezone="Europe/Paris").cadence == (
        "0 3 * * * Europe/Paris"
    )
    assert S.rfc3339(0) == "" and S.rfc3339(1767225600) == "2026-01-01T00:00:00Z"
