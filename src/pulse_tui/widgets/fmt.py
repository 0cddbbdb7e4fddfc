"""Small formatting helpers shared by the screens: times, durations, counts, statuses."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from pulse_tui.console import find_console

if TYPE_CHECKING:  # the CLI uses these helpers too, without loading Textual
    from textual.app import App

    from pulse_tui.protocol.operator_pb2 import Budget, Job

# Colours come from the Textual theme: the literals below name roles (the Tokyo Night values the
# console was drawn with) and C() swaps each for the current theme's colour of that role, so every
# built-in theme, light ones included, keeps its contrast. apply_theme() runs on every theme change.
ROLES: dict[str, str] = {
    "#7aa2f7": "text-primary",  # queued, keys, progress bars
    "#e0af68": "text-warning",  # running, warnings
    "#9ece6a": "text-success",  # completed, ok
    "#f7768e": "text-error",  # failed, errors
    "#db4b4b": "error",  # tracebacks
    "#7dcfff": "text-accent",  # info logs
    "#bb9af7": "text-secondary",  # marks, notes
    "#737aa2": "foreground-darken-3",  # cancelled, debug
    "#a9b1d6": "foreground-darken-1",  # paused
    "#24283b": "panel",  # progress track
}
_HEX = re.compile("|".join(re.escape(h) for h in ROLES))
_colours: dict[str, str] = {}
_generation = [0]  # apply_theme calls so far: what cached drawings compare


def colours_generation() -> int:
    """A number that changes whenever the role colours do: a drawing cached with the theme's name
    alone could hold the previous colours (the name changes a moment before they are taken)."""
    return _generation[0]


def apply_theme(variables: dict[str, str]) -> None:
    """Take the role colours from a theme's CSS variables (App.get_css_variables())."""
    _generation[0] += 1
    _colours.clear()
    for hex_value, role in ROLES.items():
        value = variables.get(role, "")
        if re.fullmatch(r"#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?", value):
            _colours[hex_value] = value[:7]


def C(style: str) -> str:
    """A Rich style string with its role colours taken from the current theme."""
    return _HEX.sub(lambda m: _colours.get(m.group(0), m.group(0)), style) if _colours else style


class ThemedStyles(dict[str, str]):
    """A name → style table whose values follow the theme (see C)."""

    def __getitem__(self, key: str) -> str:
        return C(super().__getitem__(key))

    # always a str (dict.get may return None): narrower than the overloads it replaces
    def get(self, key: str, default: str = "") -> str:  # type: ignore[override]
        return C(super().get(key, default))


STATUS_ICONS: dict[str, str] = {
    "queued": "◷",
    "running": "▶",
    "paused": "⏸",
    "completed": "✔",
    "failed": "✘",
    "cancelled": "⊘",
}

# Rich styles per status: the same role colour on every screen, taken from the theme (see C).
STATUS_STYLES: ThemedStyles = ThemedStyles(
    {
        "queued": "bold #7aa2f7",
        "running": "bold #e0af68",
        "paused": "#a9b1d6",
        "completed": "#9ece6a",
        "failed": "bold #f7768e",
        "cancelled": "#737aa2",
    }
)

# Why a paused job is held (Job.pause_reason), as the console says it.
PAUSE_REASONS: dict[str, str] = {
    "user_requested": "paused by operator",
    "handler_paused": "handler paused",
    "budget_exceeded": "budget exceeded",
}


def pause_reason(job: Job) -> str:
    """ "handler paused" for a held job ("" unless paused)."""
    if job.status != "paused":
        return ""
    reason = job.pause_reason
    return PAUSE_REASONS.get(reason, reason.replace("_", " "))


def budget_markup(budgets: Sequence[Budget]) -> str:
    """The status bar's spend: the budget nearest its limit, `$ 0.80/1.00 day` and a small bar
    (red when reached, amber from 80 %), `+N` when there are more; "" without budgets."""
    if not budgets:
        return ""
    b = max(budgets, key=lambda x: (x.reached, x.spent / x.limit if x.limit else 0.0))
    ratio = min(1.0, b.spent / b.limit) if b.limit else 1.0
    filled = round(ratio * 5)
    style = C("bold #f7768e" if b.reached else "#e0af68" if ratio >= 0.8 else "#9ece6a")
    scope = f"{b.scope} " if b.scope else ""
    period = "day" if b.period == "daily" else "month"
    more = f" +{len(budgets) - 1}" if len(budgets) > 1 else ""
    bar = "▮" * filled + "▯" * (5 - filled)
    return f"[{style}]$ {bar} {scope}{b.spent:.2f}/{b.limit:.2f} {period}[/][dim]{more}[/]"


LEVEL_STYLES: ThemedStyles = ThemedStyles(
    {
        "debug": "#737aa2",
        "info": "#7dcfff",
        "warn": "bold #e0af68",
        "warning": "bold #e0af68",
        "error": "bold #f7768e",
        "critical": "bold reverse #f7768e",
    }
)

OUTCOME_STYLES: ThemedStyles = ThemedStyles(
    {
        "running": STATUS_STYLES["running"],
        "completed": STATUS_STYLES["completed"],
        "failed": STATUS_STYLES["failed"],
        "timeout": STATUS_STYLES["failed"],
        "cancelled": STATUS_STYLES["cancelled"],
        "interrupted": "#e0af68",
        "plugin_unavailable": "#e0af68",
        "protocol_error": "#f7768e",
        "crashed": STATUS_STYLES["failed"],
    }
)


def app_now(app: App[Any] | None) -> float:
    """The app's clock (frozen in snapshot tests), else wall time."""
    console = find_console(app)
    return console.now() if console is not None else time.time()


def app_tz(app: App[Any] | None) -> tzinfo | None:
    console = find_console(app)
    return console.tz if console is not None else None


def duration(secs: float) -> str:
    """Compact human duration: 0.4s, 12s, 3m05s, 2h10m, 3d04h."""
    if secs < 0:
        secs = 0.0
    if secs < 10:
        return f"{secs:.1f}s"
    s = int(secs)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def ago(ts: float, now: float) -> str:
    if not ts:
        return "—"
    delta = now - ts
    if delta < 1:
        return "just now"
    if delta < 60:
        return f"{int(delta)}s ago"
    return duration(delta) + " ago"


def _local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts).astimezone()


def absolute(ts: float, tz: tzinfo | None = None) -> str:
    """Full local timestamp with zone: 2026-11-23 12:01:02 UTC."""
    if not ts:
        return "—"
    return _local(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def clock(ts: float, now: float, tz: tzinfo | None = None) -> str:
    """Local time of day when ``ts`` is on the same day as ``now``, else date and time."""
    if not ts:
        return "—"
    dt = _local(ts, tz)
    if dt.date() == _local(now, tz).date():
        return dt.strftime("%H:%M:%S")
    return dt.strftime("%Y-%m-%d %H:%M")


def when(ts: float, now: float, tz: tzinfo | None = None) -> str:
    """Relative and absolute (local): "3m05s ago · 12:01:02"."""
    if not ts:
        return "—"
    return f"{ago(ts, now)} · {clock(ts, now, tz)}"


def count(n: int, capped: bool = False, cap: int = 0) -> str:
    """10k+ style for capped counts, 1.2k style for big exact ones."""
    if capped and cap and n >= cap:
        return f"{_short(cap)}+"
    return _short(n) if n >= 10000 else str(n)


def _short(n: int) -> str:
    if n >= 1_000_000:
        v = n / 1_000_000
        return f"{v:.0f}M" if v >= 10 or v == int(v) else f"{v:.1f}M"
    if n >= 1000:
        v = n / 1000
        return f"{v:.0f}k" if v >= 10 or v == int(v) else f"{v:.1f}k"
    return str(n)


def short_id(job_id: str, width: int) -> str:
    """Ids are time-prefixed; when space is short the random tail is what tells them apart."""
    if len(job_id) <= width:
        return job_id
    return "…" + job_id[-(width - 1) :]


def job_age(job: Job, now: float) -> str:
    """The TIME column, saying which time it is: ``wait 3m05s`` (queued / paused, since it was
    enqueued), ``run 12s`` (this attempt), ``took 0.4s`` (finished: start to end), ``took <0.1s``
    for jobs faster than the column can show, ``after 5.0s`` (cancelled before it started)."""
    if job.status == "running" and job.started_at:
        return f"run {duration(now - job.started_at)}"
    if job.completed_at and job.started_at:
        took = job.completed_at - job.started_at
        return "took <0.1s" if took < 0.05 else f"took {duration(took)}"
    if job.completed_at:  # cancelled before it started
        return f"after {duration(job.completed_at - job.created_at)}" if job.created_at else "—"
    if job.created_at:
        return f"wait {duration(now - job.created_at)}"
    return "—"


def until(secs: float) -> str:
    """A short time to come, never "0s" while still ahead: 12s, 59m, 2h10m, 3d04h."""
    s = max(1, math.ceil(secs))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def waiting(job: Job, now: float) -> str:
    """Why a queued job is not due yet: "retry" (a backoff: it has run before) or "delay" (a delayed
    enqueue or a run at a set time); "" when it is not waiting for a future time."""
    if job.status != "queued" or not job.run_at or job.run_at <= now:
        return ""
    return "retry" if job.attempts > 0 else "delay"


def waiting_label(job: Job, now: float) -> str:
    """The STATUS cell of a waiting job: "◷ in 59m", "◷ retry in 12s"; "" when not waiting."""
    kind = waiting(job, now)
    if not kind:
        return ""
    left = until(job.run_at - now)
    return f"◷ retry in {left}" if kind == "retry" else f"◷ in {left}"


def charged_attempts(job: Job) -> int:
    """Attempts charged against the current run's budget (interruptions are not charged)."""
    if job.run_attempts or job.retry_count or job.interrupted_attempts:
        return job.run_attempts
    return job.attempts  # an old server (no run_attempts) or compat mode


def attempts_label(job: Job) -> str:
    """`1/3`, or `1/3 +2↺` when two attempts were interrupted (crash, reload, shutdown) uncharged."""
    used = charged_attempts(job)
    label = f"{used}/{job.max_attempts}" if job.max_attempts else str(used)
    interrupted = job.interrupted_attempts
    return f"{label} +{interrupted}↺" if interrupted else label
