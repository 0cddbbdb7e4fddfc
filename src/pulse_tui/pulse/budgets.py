"""Spend budgets: `[budgets]` in pulse.toml, over the `cost_actual` that jobs report.

The spend of a period is the sum of `cost_actual` of the jobs that finished in it (completed,
failed or cancelled; `completed_at` in the period), in the unit the plugins report cost in. Periods
are UTC days and UTC months. A budget covers every job (`daily`, `monthly`) or one handler
(`[budgets.handlers."demo.sleep"]`, by its bare name: the qualified `plugin/demo.sleep` too).

Whether one more job would take a budget over its limit is judged job by job: a job with a
`cost_estimate` goes over when the spend plus its estimate passes the limit; a job without one
counts as the average cost of the period's finished jobs in the budget's scope. A budget is
*reached* (what `:budgets` and ServerInfo say) when its spend is at the limit or one more job of
that average cost would pass it. The queued jobs (and new ones) that would go over a budget
covering them are held `paused` with reason `budget_exceeded`; they are released when they fit
again: the period rolls over or the limit is raised (a restart with the new config), or one by one
by an operator's resume, which lets that job run once even over budget. Jobs already running when
a budget is reached finish, so the spend can end a little over a limit.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from pulse_tui.config import BudgetConfig, Limits
from pulse_tui.pulse.jobs import handler_base

__all__ = [
    "BudgetConfig",
    "Limits",
    "SpendBook",
    "BudgetState",
    "Fit",
    "states",
    "fits",
    "held_scopes",
    "period_starts",
]

DAILY = "daily"
MONTHLY = "monthly"
PERIODS = (DAILY, MONTHLY)  # Limits.get() takes these


def period_starts(now: float) -> tuple[float, float]:
    """Start of the UTC day and of the UTC month holding `now` (unix seconds)."""
    t = time.gmtime(now)
    day = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
    month = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    return float(day), float(month)


@dataclass(slots=True)
class Spend:
    total: float = 0.0
    jobs: int = 0  # finished jobs counted (for the average cost)

    def add(self, cost: float) -> None:
        self.total += cost
        self.jobs += 1


@dataclass(slots=True)
class BudgetState:
    """One budget now: its scope ("" = every job), period, limit and what was spent."""

    scope: str
    period: str
    limit: float
    spent: float
    jobs: int

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.spent)

    @property
    def reached(self) -> bool:
        if self.spent >= self.limit:
            return True
        return self.jobs > 0 and self.spent + self.spent / self.jobs > self.limit


class SpendBook:
    """What was spent this UTC day and month, per bare handler name. Loaded from the store and
    kept up to date with the ends this node records; reloaded when a period rolls over."""

    def __init__(self) -> None:
        self.day_start = 0.0
        self.month_start = 0.0
        self.day: dict[str, Spend] = {}
        self.month: dict[str, Spend] = {}

    def stale(self, now: float) -> bool:
        return period_starts(now) != (self.day_start, self.month_start)

    def load(self, day_start: float, month_start: float, rows: list[tuple[str, float, float, int]]) -> None:
        """rows: (handler, completed_at bucket start: day_start or month_start, cost, jobs) as
        `Store.spend` returns them."""
        self.day_start, self.month_start = day_start, month_start
        self.day, self.month = {}, {}
        for handler, bucket, cost, jobs in rows:
            name = handler_base(handler)
            target = self.day if bucket >= day_start else self.month
            s = target.setdefault(name, Spend())
            s.total += cost
            s.jobs += jobs
        for name, s in self.day.items():  # the day is part of the month
            m = self.month.setdefault(name, Spend())
            m.total += s.total
            m.jobs += s.jobs

    def add(self, handler: str, cost: float, completed_at: float) -> None:
        if completed_at < self.month_start:
            return
        name = handler_base(handler)
        s = self.month.get(name)  # no Spend() made per job just to be thrown away
        if s is None:
            s = self.month[name] = Spend()
        s.add(cost)
        if completed_at >= self.day_start:
            s = self.day.get(name)
            if s is None:
                s = self.day[name] = Spend()
            s.add(cost)

    def spent(self, period: str, scope: str = "") -> Spend:
        book = self.day if period == DAILY else self.month
        if scope:
            return book.get(scope, Spend())
        out = Spend()
        for s in book.values():
            out.total += s.total
            out.jobs += s.jobs
        return out


def states(config: BudgetConfig, book: SpendBook) -> list[BudgetState]:
    """Every configured budget with its spend (total first, then handlers by name)."""
    out: list[BudgetState] = []
    scopes: list[tuple[str, Limits]] = [("", config.total), *sorted(config.handlers.items())]
    for scope, limits in scopes:
        for period in PERIODS:
            limit = limits.get(period)
            if limit > 0:
                s = book.spent(period, scope)
                out.append(BudgetState(scope, period, limit, s.total, s.jobs))
    return out


@dataclass(frozen=True, slots=True)
class Fit:
    """What the budgets covering a group of handlers let run now: a job with a cost estimate
    fits when the estimate is at most `headroom` (the least that any of them has left, may be
    negative); a job without one is held when `unestimated_held` (one of them is reached)."""

    headroom: float
    unestimated_held: bool

    def holds(self, estimate: float) -> bool:
        return estimate > self.headroom if estimate > 0 else self.unestimated_held


def fits(all_states: list[BudgetState]) -> tuple[Fit | None, dict[str, Fit]]:
    """(the fit of every handler without its own budget, None when no total budget covers
    them; {handler with its own budget: its fit, the total budgets included})."""

    def fit(group: list[BudgetState]) -> Fit:
        return Fit(min(s.limit - s.spent for s in group), any(s.reached for s in group))

    total = [s for s in all_states if not s.scope]
    own: dict[str, list[BudgetState]] = {}
    for s in all_states:
        if s.scope:
            own.setdefault(s.scope, []).append(s)
    return (fit(total) if total else None), {h: fit(total + group) for h, group in own.items()}


def held_scopes(all_states: list[BudgetState]) -> tuple[bool, set[str]]:
    """(every job is held, the handlers whose own budget is reached)."""
    everything = any(s.reached for s in all_states if not s.scope)
    return everything, {s.scope for s in all_states if s.scope and s.reached}


def remaining_for(all_states: list[BudgetState], handler: str) -> float | None:
    """The smallest remaining amount among the budgets covering `handler` (None: no budget)."""
    name = handler_base(handler)
    left = [s.remaining for s in all_states if not s.scope or s.scope == name]
    return min(left) if left else None
