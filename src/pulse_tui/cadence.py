"""Cadence arithmetic shared by the server and the console: intervals ("5m") and 5-field cron
expressions read in an IANA time zone (so "0 3 * * *" stays at 03:00 local across daylight-saving
changes). Pure functions; errors are CadenceError with a message fit for the user."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MAX_INTERVAL_SECS = 366 * 86400


class CadenceError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_EVERY_RE = re.compile(r"(\d+)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """'90', '90s', '5m', '1h30m', '2d', '4w' → seconds (no range check). Raises CadenceError."""
    t = text.strip().lower().replace(" ", "")
    if not re.fullmatch(r"(\d+[smhdw]?)+", t):
        raise CadenceError(f"{text!r} is not a duration like 30s, 5m, 1h30m or 2d")
    return sum(int(n) * _UNITS[u] for n, u in _EVERY_RE.findall(t))


def parse_every(text: str) -> int:
    """'90', '90s', '5m', '1h30m', '2d' → seconds. Raises CadenceError."""
    try:
        total = parse_duration(text)
    except CadenceError:
        raise CadenceError(f"interval {text!r} is not a duration like 30s, 5m, 1h30m or 2d") from None
    check_interval(total)
    return total


def format_interval(secs: int) -> str:
    if secs <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            n, secs = divmod(secs, size)
            out.append(f"{n}{unit}")
    return "".join(out)


def check_interval(secs: int) -> None:
    if secs < 1:
        raise CadenceError(f"interval must be at least 1 second, got {secs}")
    if secs > MAX_INTERVAL_SECS:
        raise CadenceError(f"interval {secs}s is over the one-year limit")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CadenceError(
            f"unknown time zone {name!r}; use an IANA name such as UTC, Europe/Paris, America/New_York"
        ) from None


def check_cron(expr: str, tz: str = "") -> None:
    if not expr.strip():
        raise CadenceError("cron expression is empty")
    if len(expr.split()) != 5:
        raise CadenceError(
            f"cron expression {expr!r} must have 5 fields (minute hour day-of-month month day-of-week)"
        )
    try:
        CronSim(expr, datetime.now(zone(tz)))
    except CronSimError as exc:
        # CronSim says only "Bad minute": name the field's text and what it takes
        name = str(exc).removeprefix("Bad ")
        if name in CRON_FIELDS:
            i, takes = CRON_FIELDS[name]
            raise CadenceError(
                f"cron expression {expr!r} is not valid: its {name} field {expr.split()[i]!r} ({takes})"
            ) from None
        raise CadenceError(f"cron expression {expr!r} is not valid: {exc}") from None


CRON_FIELDS = {  # CronSim's field name -> (position, its values)
    "minute": (0, "0-59"),
    "hour": (1, "0-23"),
    "day-of-month": (2, "1-31, a day the month has"),
    "month": (3, "1-12 or jan-dec"),
    "day-of-week": (4, "0-7 or sun-sat"),
}


def check_cadence(interval_secs: int, cron: str, tz: str) -> None:
    """Exactly one of interval and cron; a time zone only goes with cron."""
    if interval_secs and cron:
        raise CadenceError("give either an interval or a cron expression, not both")
    if not interval_secs and not cron:
        raise CadenceError("a schedule needs an interval (e.g. every 5m) or a cron expression")
    if cron:
        check_cron(cron, tz)
    else:
        check_interval(interval_secs)
        if tz:
            raise CadenceError("a time zone only applies to a cron schedule")


def cron_runs(expr: str, tz: str, after: float, count: int) -> list[float]:
    """The next `count` run times (unix seconds) strictly after `after`, computed in `tz` (so
    "0 3 * * *" stays at 03:00 local across daylight-saving changes)."""
    it = CronSim(expr, datetime.fromtimestamp(math.floor(after), zone(tz)))
    out: list[float] = []
    for d in it:
        ts = d.timestamp()
        if ts > after:
            out.append(ts)
            if len(out) >= count:
                break
    return out


def describe(interval_secs: int, cron: str, tz: str) -> str:
    """ "every 5m" or "0 3 * * * Europe/Paris"."""
    return f"{cron} {tz or 'UTC'}" if cron else f"every {format_interval(interval_secs)}"


def preview(interval_secs: int, cron: str, tz: str, after: float, count: int = 3) -> list[float]:
    """The next `count` runs of a cadence after `after` (raises CadenceError when invalid)."""
    check_cadence(interval_secs, cron, tz)
    if cron:
        return cron_runs(cron, tz, after, count)
    return [after + interval_secs * (i + 1) for i in range(count)]


def rfc3339(ts: float) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
