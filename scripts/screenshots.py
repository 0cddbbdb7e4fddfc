"""Screenshots of every console screen against a real `pulse-tui serve` with stable data.

    python -m scripts.screenshots            # writes screenshots/*.svg and *.png

A real server (demo + importer plugins, so the handlers screen shows a conflict) is started in a
temp dir and filled with a fixed set of jobs; a second one runs the bundled python plugin with a few
handler scripts for the handler editor and the `:ix` "not found, create?" prompt. The console talks to it through ``StableClient``,
which only rewrites what differs between runs — job ids, timestamps, pids, ports — so the pictures
(and the snapshot tests in tests/test_tui_snapshots.py and tests/test_tui_editor_snapshots.py, which
reuse this module) are reproducible.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from pulse_tui.app import PulseApp
from pulse_tui.client import PulseClient, job_filter
from pulse_tui.protocol import operator_pb2

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "screenshots"
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC).timestamp()
NOW = T0 + 3600.0
SHOWN_ADDRESS = "127.0.0.1:7878"

PLUGINS_CONFIG = """
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]

[[plugins]]
name = "importer"
command = ["{python}", "-m", "pulse_tui.plugins.importer"]
"""

# pause and budgets: jobs held by an operator, by a paused handler and by a reached budget
PAUSE_CONFIG = (
    PLUGINS_CONFIG
    + f"""
[[plugins]]
name = "costly"
command = ["{{python}}", "{(ROOT / "tests" / "plugins" / "costly.py").as_posix()}"]

[budgets.handlers."cost.run"]
daily = 1.0
"""
)

EDITOR_CONFIG = """
[[plugins]]
name = "python"
command = ["{python}", "-m", "pulse_tui.plugins.python"]
"""


def frozen_now() -> float:
    return NOW


class StableClient(PulseClient):
    """A real client whose answers have run-dependent values replaced by stable ones."""

    def __init__(self, address: str, token: str) -> None:
        super().__init__(address, token)
        self._to_stable: dict[str, str] = {}
        self._to_real: dict[str, str] = {}

    # ids ------------------------------------------------------------------
    def _sid(self, real: str, seq: int) -> str:
        if not real:
            return real
        if real not in self._to_stable:
            stable = f"{0x19AB2C4000 + seq:010x}{(seq * 7919) % 0xFFFFFF:06x}"
            self._to_stable[real], self._to_real[stable] = stable, real
        return self._to_stable[real]

    def _rid(self, job_id: str) -> str:
        return self._to_real.get(job_id, job_id)

    # times ----------------------------------------------------------------
    def _job(self, job: operator_pb2.Job) -> operator_pb2.Job:
        j = operator_pb2.Job()
        j.CopyFrom(job)
        j.id = self._sid(job.id, job.seq)
        if job.parent_job_id:
            j.parent_job_id = self._to_stable.get(job.parent_job_id, "")
        base = T0 + job.seq * 60.0
        j.created_at = base
        j.updated_at = base
        if job.started_at:
            j.started_at = base + 5.0
        if job.completed_at:
            j.completed_at = (
                j.started_at + round(job.completed_at - job.started_at) if job.started_at else base + 5
            )
        if job.handler.startswith("python.") and job.completed_at and job.started_at:
            j.completed_at = j.started_at + 0.4  # a script's child process start varies run to run
        if job.run_at:
            j.run_at = base + (3600.0 if job.run_at > job.created_at + 60 else 0.0)
        j.node = "n1" if job.node else ""
        return j

    def _detail(self, d: operator_pb2.JobDetail) -> operator_pb2.JobDetail:
        out = operator_pb2.JobDetail()
        out.CopyFrom(d)
        out.job.CopyFrom(self._job(d.job))
        start = out.job.started_at or out.job.created_at
        for i, a in enumerate(out.attempts):
            real_len = (a.ended_at - a.started_at) if a.ended_at else 0.0
            a.started_at = start + i * 2.0
            a.ended_at = a.started_at + round(real_len) if a.ended_at else 0.0
            a.node = "n1" if a.node else ""
        for i, entry in enumerate(out.logs):
            entry.timestamp = datetime.fromtimestamp(start + i * 0.25, UTC).isoformat().replace("+00:00", "Z")
            entry.metadata = re.sub(r"\d{4,}", "4242", entry.metadata)
            entry.message = re.sub(r"\d{4,}", "4242", entry.message)
        out.result = re.sub(rb'"pid": \d+', b'"pid": 4242', out.result)
        return out

    # overrides --------------------------------------------------------------
    async def list_jobs(self, flt=None, **kw):
        resp = await super().list_jobs(self._flt(flt), **kw)
        out = operator_pb2.ListJobsResponse(has_more=resp.has_more, next_after_seq=resp.next_after_seq)
        out.jobs.extend(self._job(j) for j in resp.jobs)
        return out

    def _flt(self, flt: operator_pb2.JobFilter | None) -> operator_pb2.JobFilter | None:
        if flt is None or not (flt.text or flt.parent_job_id):
            return flt
        if not flt.parent_job_id:
            return job_filter(flt.statuses, flt.handler, self._rid(flt.text))
        out = operator_pb2.JobFilter()
        out.CopyFrom(flt)
        out.text, out.parent_job_id = self._rid(flt.text), self._rid(flt.parent_job_id)
        return out

    async def count_jobs(self, flt=None, **kw):
        return await super().count_jobs(self._flt(flt), **kw)

    async def get_job(self, job_id: str) -> operator_pb2.JobDetail:
        return self._detail(await super().get_job(self._rid(job_id)))

    async def watch_jobs(self, flt=None, *, view=None, from_seq=0):
        shown = None if view is None else [self._rid(i) for i in view]
        async for ev in super().watch_jobs(flt, view=shown, from_seq=from_seq):
            out = operator_pb2.JobEvent(
                kind=ev.kind,
                server_time=NOW,
                view_token=ev.view_token,
                others=ev.others,
                others_from_seq=ev.others_from_seq,
                counts=ev.counts if ev.HasField("counts") else None,
            )
            if ev.HasField("job"):
                out.job.CopyFrom(self._job(ev.job))
            yield out

    async def set_watch_view(self, view_token: str, ids, from_seq: int = 0) -> None:
        await super().set_watch_view(view_token, [self._rid(i) for i in ids], from_seq)

    async def cancel_jobs(self, ids=(), flt=None, **kw):
        return await super().cancel_jobs([self._rid(i) for i in ids], flt, **kw)

    async def retry_jobs(self, ids=(), flt=None, **kw):
        return await super().retry_jobs([self._rid(i) for i in ids], flt, **kw)

    async def enqueue(self, handler: str, payload=None, **kw) -> operator_pb2.Job:
        return self._job(await super().enqueue(handler, payload, **kw))

    def _script(self, s: operator_pb2.Script) -> operator_pb2.Script:
        out = operator_pb2.Script()
        out.CopyFrom(s)
        if s.modified_at:
            out.modified_at = NOW - 300.0 - 3600.0 * (len(s.name) % 3)
        return out

    async def list_scripts(self) -> list[operator_pb2.Script]:
        return [self._script(s) for s in await super().list_scripts()]

    async def get_script(self, name: str) -> operator_pb2.Script:
        return self._script(await super().get_script(name))

    async def save_script(
        self, name: str, code: str, base_version: str = ""
    ) -> operator_pb2.SaveScriptResponse:
        resp = await super().save_script(name, code, base_version)
        if resp.HasField("script"):
            resp.script.CopyFrom(self._script(resp.script))
        return resp

    # schedules: stable ids ("s-1", …) by creation order, times relative to NOW
    def _sched_id(self, real: str, created_at: float) -> str:
        if real not in self._to_stable:
            n = sum(1 for v in self._to_stable.values() if v.startswith("sch-")) + 1
            stable = f"sch-{n}"
            self._to_stable[real], self._to_real[stable] = stable, real
        return self._to_stable[real]

    def _schedule(self, s: operator_pb2.Schedule) -> operator_pb2.Schedule:
        from pulse_tui import cadence

        out = operator_pb2.Schedule()
        out.CopyFrom(s)
        out.id = self._sched_id(s.id, s.created_at)
        out.created_at = out.updated_at = T0
        if s.next_run_at:
            out.next_run_at = (
                cadence.cron_runs(s.cron, s.timezone, NOW, 1)[0] if s.cron else NOW + s.interval_secs
            )
        return out

    async def list_schedules(self, *a, **kw) -> list[operator_pb2.Schedule]:
        found = await super().list_schedules(*a, **kw)
        return [self._schedule(s) for s in sorted(found, key=lambda x: x.created_at)]

    async def get_schedule(self, schedule_id: str, **kw) -> operator_pb2.ScheduleDetail:
        from pulse_tui import cadence

        d = await super().get_schedule(self._rid(schedule_id), **kw)
        out = operator_pb2.ScheduleDetail()
        out.CopyFrom(d)
        out.schedule.CopyFrom(self._schedule(d.schedule))
        del out.next_runs[:]
        if out.schedule.state == "active":
            s = out.schedule
            out.next_runs.extend(
                [s.next_run_at, *cadence.preview(s.interval_secs, s.cron, s.timezone, s.next_run_at, 2)]
            )
        return out

    async def watch_schedules(self):
        async for ev in super().watch_schedules():
            out = operator_pb2.ScheduleEvent(kind=ev.kind, server_time=NOW)
            if ev.HasField("schedule"):
                out.schedule.CopyFrom(self._schedule(ev.schedule))
            yield out

    async def schedule_action(self, action: str, schedule_id: str):
        return await super().schedule_action(action, self._rid(schedule_id))

    def _stable_plugin(self, p: operator_pb2.Plugin, index: int) -> operator_pb2.Plugin:
        out = operator_pb2.Plugin()
        out.CopyFrom(p)
        out.pid = 4242 + index if p.pid else 0
        out.started_at = NOW - 3600.0 if p.started_at else 0.0
        out.endpoint = f"127.0.0.1:{50051 + index}" if p.endpoint else ""
        del out.output_tail[:]
        out.output_tail.extend(re.sub(r"\d{4,}", "4242", line) for line in p.output_tail)
        return out

    async def list_handlers(self, **kw) -> list[operator_pb2.Handler]:
        handlers = await super().list_handlers(**kw)
        for h in handlers:
            if h.paused_at:
                h.paused_at = NOW - 1800.0  # paused half an hour ago
        return handlers

    async def list_plugins(self) -> list[operator_pb2.Plugin]:
        return [self._stable_plugin(p, i) for i, p in enumerate(await super().list_plugins())]

    async def get_stats(self, handler: str = "", *, window_secs: int = 3600, step_secs: int = 0):
        """The real server answers (so the call is exercised), but its numbers depend on timing (run
        times, minute boundaries, when gauges were sampled): the picture shows a fixed day instead."""
        real = await super().get_stats(handler, window_secs=window_secs, step_secs=step_secs)
        return stable_stats(real.window_secs, real.step_secs, handler)

    async def get_plugin(self, name: str, *, tail_lines: int = 50) -> operator_pb2.Plugin:
        names = [p.name for p in await super().list_plugins()]
        p = await super().get_plugin(name, tail_lines=tail_lines)
        return self._stable_plugin(p, names.index(name) if name in names else 0)


# (handler, ended per step at peak, error share, run p50, run p95, wait p95, due, oldest due age)
STATS_HANDLERS = (
    ("data.import", 4, 0.0, 1.8, 6.5, 0.04, 0, 0.0),
    ("demo.echo", 40, 0.0, 0.012, 0.048, 0.006, 3, 2.0),
    ("demo.flaky", 9, 0.35, 0.2, 0.9, 0.3, 12, 340.0),
    ("pulse.fail", 2, 1.0, 0.004, 0.009, 0.002, 0, 0.0),
    ("pulse.sleep", 6, 0.0, 4.1, 9.6, 0.8, 1, 4.0),
)


def stable_stats(window: int, step: int, handler: str = "") -> operator_pb2.GetStatsResponse:
    """A deterministic GetStatsResponse: a daily wave of traffic per handler."""
    import math

    npoints = max(1, window // max(step, 1))
    start = NOW - window
    resp = operator_pb2.GetStatsResponse(
        server_time=NOW, window_secs=window, step_secs=step, sampled_at=NOW, enabled=True
    )
    totals = [[0, 0] for _ in range(npoints)]
    summary_all = operator_pb2.StatsSummary()
    for k, (name, peak, err, p50, p95, w95, due, oldest) in enumerate(STATS_HANDLERS):
        if handler and name != handler:
            continue
        series = resp.handlers.add(handler=name)
        ended = failed = 0
        for i in range(npoints):
            wave = 0.55 + 0.45 * math.sin((i + 7 * k) / max(3.0, npoints / 6.0))
            n = round(peak * wave)
            f = round(n * err)
            totals[i][0] += n - f
            totals[i][1] += f
            ended += n
            failed += f
            series.points.add(
                ts=start + i * step,
                enqueued=n,
                started=n,
                completed=n - f,
                failed=f,
                run_p50=p50,
                run_p95=p95,
            )
            if f:
                series.points[-1].finished["failed"] = f
            if n - f:
                series.points[-1].finished["completed"] = n - f
        sm = series.summary
        sm.enqueued = sm.started = ended
        sm.completed, sm.failed = ended - failed, failed
        sm.finished["completed"] = ended - failed
        if failed:
            sm.finished["failed"] = failed
        sm.per_min = ended * 60.0 / window
        sm.error_pct = 100.0 * failed / ended if ended else 0.0
        sm.run_p50, sm.run_p95, sm.wait_p95 = p50, p95, w95
        for key in ("enqueued", "started", "completed", "failed"):
            setattr(summary_all, key, getattr(summary_all, key) + getattr(sm, key))
        resp.gauges.add(handler=name, queued=due, due=due, oldest_due_age_secs=oldest)
    for i, (ok, bad) in enumerate(totals):
        p = resp.total.points.add(ts=start + i * step, completed=ok, failed=bad)
        p.finished["completed"] = ok
    summary_all.finished["completed"] = summary_all.completed
    summary_all.finished["failed"] = summary_all.failed
    ended = summary_all.completed + summary_all.failed
    summary_all.per_min = ended * 60.0 / window
    summary_all.error_pct = 100.0 * summary_all.failed / ended if ended else 0.0
    summary_all.run_p95, summary_all.wait_p95 = 6.2, 0.3
    resp.total.summary.CopyFrom(summary_all)
    return resp


async def populate(address: str, token: str) -> None:
    """A fixed mix: completed, failed after retries (with logs), cancelled, queued, one running."""
    async with PulseClient(address, token) as c:
        await c.probe()

        async def wait(job_id: str, *statuses: str) -> None:
            for _ in range(400):
                if (await c.get_job(job_id)).job.status in statuses:
                    return
                await asyncio.sleep(0.025)
            raise RuntimeError(f"job {job_id} never reached {statuses}")

        jobs = []
        for i in range(4):
            jobs.append(await c.enqueue("demo.echo", {"order": 1000 + i, "sku": f"SKU-{i:03d}"}))
        jobs.append(await c.enqueue("data.import", {"file": "customers.csv", "rows": 1200}))
        jobs.append(await c.enqueue("pulse.sleep", {"seconds": 0.2, "steps": 4}))
        for j in jobs:
            await wait(j.id, "completed")
        flaky = await c.enqueue("demo.flaky", {"fail_rate": 1.0}, max_attempts=2)
        boom = await c.enqueue(
            "pulse.fail", {"error": "upstream returned 503: rate limited, try again later"}, max_attempts=1
        )
        await wait(boom.id, "failed")
        await wait(flaky.id, "failed")
        gone = await c.enqueue("demo.sleep", {"seconds": 5}, delay_secs=3600)
        await c.cancel(gone.id)
        await c.enqueue("data.batch-import", {"batch": 7}, delay_secs=3600, priority=5)
        await c.enqueue("demo.sleep", {"seconds": 30}, delay_secs=3600)
        running = await c.enqueue("demo.sleep", {"seconds": 3000, "steps": 10}, timeout_secs=7200)
        await wait(running.id, "running")
        # schedules that do not run while the pictures are taken (no extra jobs on other screens)
        await c.create_schedule("demo.echo", b'{"ping": true}', interval_secs=3600)
        await c.create_schedule(
            "data.import", b'{"file": "daily.csv"}', cron="0 3 * * *", timezone="Europe/Paris"
        )
        await c.create_schedule("pulse.fail", b"{}", interval_secs=300, paused=True, overlap="allow")


DIGEST = """\"\"\"digest: summarise a day's vacancies into one line per team.\"\"\"


def run(payload, ctx):
    teams = payload.get("teams", ["ops", "data"])
    for i, team in enumerate(teams):
        ctx.progress(i + 1, len(teams))
    return {"teams": len(teams), "summary": ", ".join(teams)}
"""


async def populate_scripts(address: str, token: str) -> None:
    """Handler scripts for the editor scenes, and one finished test run of python.vacancies."""
    from pulse_tui.script_template import template

    async with PulseClient(address, token) as c:
        await c.probe()
        for name, code in (("vacancies", template("vacancies")), ("digest", DIGEST)):
            out = await c.save_script(name, code)
            if not (out.saved and out.live):
                raise RuntimeError(f"script {name} not live: {out.error or out.reload_message}")
        job = await c.enqueue("python.vacancies", {"items": 4}, max_attempts=1, source="pulse-tui editor")
        for _ in range(400):
            if (await c.get_job(job.id)).job.status in ("completed", "failed"):
                return
            await asyncio.sleep(0.025)
        raise RuntimeError("the python.vacancies test job did not finish")


async def populate_children(address: str, token: str) -> None:
    """A running parent with six children: three completed, one failed, two waiting (delayed)."""
    async with PulseClient(address, token) as c:
        await c.probe()

        async def wait(job_id: str, *statuses: str) -> None:
            for _ in range(400):
                if (await c.get_job(job_id)).job.status in statuses:
                    return
                await asyncio.sleep(0.025)
            raise RuntimeError(f"job {job_id} never reached {statuses}")

        parent = await c.enqueue(
            "pulse.sleep", {"seconds": 3000, "steps": 10}, timeout_secs=7200, cost_estimate=2.5
        )
        await wait(parent.id, "running")
        kids = [
            await c.enqueue("pulse.noop", {"part": i}, parent_job_id=parent.id, cost_estimate=0.5)
            for i in range(3)
        ]
        kids.append(
            await c.enqueue(
                "pulse.fail", {"error": "part 3: checksum mismatch"}, parent_job_id=parent.id, max_attempts=1
            )
        )
        for kid in kids:
            await wait(kid.id, "completed", "failed")
        for i in (4, 5):
            await c.enqueue("pulse.sleep", {"part": i}, parent_job_id=parent.id, delay_secs=3600)


async def populate_paused(address: str, token: str) -> None:
    """Jobs held three ways (operator, paused handler, reached budget), next to finished ones."""
    async with PulseClient(address, token) as c:
        await c.probe()

        async def wait(job_id: str, *statuses: str) -> None:
            for _ in range(400):
                if (await c.get_job(job_id)).job.status in statuses:
                    return
                await asyncio.sleep(0.025)
            raise RuntimeError(f"job {job_id} never reached {statuses}")

        for i in range(2):
            done = await c.enqueue("demo.echo", {"order": 2000 + i})
            await wait(done.id, "completed")
        for _ in range(2):  # 0.45 + 0.45 of a daily 1.00: one more would go over
            spent = await c.enqueue("cost.run", {"cost": 0.45})
            await wait(spent.id, "completed")
        await c.pause_handler("demo.sleep")
        await c.enqueue("demo.sleep", {"seconds": 5})
        await c.enqueue("demo.sleep", {"seconds": 30})
        held = await c.enqueue("data.import", {"file": "big.csv", "rows": 90000}, delay_secs=3600)
        await c.pause(held.id)
        await c.enqueue("demo.echo", {"order": 2002}, delay_secs=3600)
        await c.enqueue("cost.run", {"cost": 0.45})  # held: budget_exceeded


async def scene_jobs_paused(app: PulseApp, pilot) -> None:
    """Held jobs say why: ⏸ paused (paused by operator / handler paused / budget exceeded); the
    status bar shows the spend against the budget nearest its limit."""
    await settle(app, pilot, lambda: app.screen.query_one("JobTable").total >= 9 and bool(app.budgets))
    app.paused = True


async def scene_handlers_paused(app: PulseApp, pilot) -> None:
    await settle(app, pilot, lambda: bool(app.budgets))
    await app.switch_mode("handlers")
    await settle(app, pilot, lambda: bool(getattr(app.screen, "handlers", None)))
    names = [h.name for h in app.screen.handlers]
    app.screen.query_one("DataTable").move_cursor(row=names.index("demo.sleep"))
    await pilot.pause(0.2)


async def stop_running(address: str, token: str) -> None:
    async with PulseClient(address, token) as c:
        await c.probe()
        await c.cancel_jobs(flt=job_filter(["running", "queued"]), limit=1000)


def make_app(address: str, token: str, **kw) -> PulseApp:
    return PulseApp(SHOWN_ADDRESS, token, client=StableClient(address, token), now=frozen_now, tz=UTC, **kw)


async def settle(
    app: PulseApp, pilot, cond: Callable[[], object] | None = None, timeout: float = 10.0
) -> None:
    """Wait until the app is connected, idle and ``cond`` holds; then freeze cursors."""
    await app.wait_connected(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await pilot.pause(0.05)
        busy = any(getattr(w, "loading", False) for w in app.screen.query("JobTable"))
        if not busy and (cond is None or cond()):
            break
        if loop.time() > deadline:
            raise TimeoutError("screen did not settle")
    for w in app.screen.query("Input, TextArea"):
        w.cursor_blink = False  # type: ignore[attr-defined]
    await pilot.pause(0.2)


Scene = Callable[[PulseApp, object], Awaitable[None]]


def throughput_ready(app: PulseApp) -> bool:
    """The jobs screen's throughput sparkline has its data, or is not shown at this width."""
    found = app.screen.query("Throughput")
    return not found or not found.first().fits or found.first().stats is not None  # type: ignore[attr-defined]


async def scene_jobs(app: PulseApp, pilot) -> None:
    await settle(app, pilot, lambda: app.screen.query_one("JobTable").total >= 12 and throughput_ready(app))
    app.paused = True  # freeze the picture


async def scene_jobs_triage(app: PulseApp, pilot) -> None:
    """Filtered (`handler:demo`), sorted by status, two rows marked."""
    await scene_jobs(app, pilot)
    app.paused = False
    screen = app.screen
    screen.filter = type(screen.filter).parse("handler:demo")  # type: ignore[attr-defined]
    screen.sort("status")  # type: ignore[attr-defined]
    table = screen.query_one("JobTable")
    await settle(app, pilot, lambda: table.total >= 3 and table.job_at(2) is not None)
    await pilot.press("space", "space")
    app.clear_notifications()
    app.paused = True
    await pilot.pause(0.2)


async def scene_jobs_light(app: PulseApp, pilot) -> None:
    """The jobs screen in a light theme: status colours come from the theme."""
    app.theme = "textual-light"
    await scene_jobs(app, pilot)
    await pilot.pause(0.2)


async def scene_detail(app: PulseApp, pilot) -> None:
    await scene_jobs(app, pilot)
    table = app.screen.query_one("JobTable")
    row = next(i for i in range(table.total) if table.job_at(i) and table.job_at(i).handler == "demo.flaky")
    table._move(row)
    await pilot.press("enter")
    await settle(app, pilot, lambda: getattr(app.screen, "detail", None) is not None)
    await pilot.press("right")  # error → attempts
    await pilot.pause(0.2)


async def scene_plugins(app: PulseApp, pilot) -> None:
    await settle(app, pilot)
    await app.switch_mode("plugins")
    await settle(app, pilot, lambda: getattr(app.screen, "selected", None) is not None)


async def scene_handlers(app: PulseApp, pilot) -> None:
    await settle(app, pilot)
    await app.switch_mode("handlers")
    await settle(app, pilot, lambda: bool(getattr(app.screen, "handlers", None)))
    table = app.screen.query_one("DataTable")
    names = [h.name for h in app.screen.handlers]
    table.move_cursor(row=names.index("data.import"))
    await pilot.pause(0.2)


async def scene_stats(app: PulseApp, pilot) -> None:
    """:stats over 24 h, the cursor on the handler with errors and a backlog."""
    await settle(app, pilot)
    await app.switch_mode("stats")
    screen = app.screen
    await pilot.press("2")
    await settle(
        app, pilot, lambda: getattr(screen, "stats", None) is not None and screen.stats.window_secs == 86400
    )
    app.paused = True  # no refresh during the picture
    screen.query_one("DataTable").move_cursor(row=screen.rows.index("demo.flaky"))
    await pilot.pause(0.2)


async def scene_enqueue(app: PulseApp, pilot) -> None:
    await scene_jobs(app, pilot)
    await pilot.press("e")
    await settle(app, pilot, lambda: bool(getattr(app.screen, "names", None)))
    handler = app.screen.query_one("#enqueue-handler")
    handler.value = ""
    handler.focus()
    await pilot.press(*"demo.sl")
    await settle(app, pilot)


async def scene_schedules(app: PulseApp, pilot) -> None:
    await settle(app, pilot)
    await app.switch_mode("schedules")
    await settle(
        app,
        pilot,
        lambda: (
            len(getattr(app.screen, "schedules", [])) == 3
            and getattr(app.screen, "history", None) is not None
        ),
    )
    table = app.screen.query_one("DataTable")
    table.move_cursor(row=1)
    await settle(app, pilot, lambda: app.screen.history.schedule.id == "sch-2")
    app.paused = True


async def scene_schedule_create(app: PulseApp, pilot) -> None:
    await scene_schedules(app, pilot)
    await pilot.press("n")
    await settle(app, pilot, lambda: type(app.screen).__name__ == "CreateScheduleScreen")
    app.screen.query_one("#schedule-handler").value = "demo.echo"
    app.screen.query_one("#schedule-tz").value = "Europe/Paris"
    app.screen.query_one("#schedule-cadence").value = "30 2 * * *"
    await settle(app, pilot)


async def scene_help(app: PulseApp, pilot) -> None:
    await scene_jobs(app, pilot)
    await pilot.press("question_mark")
    await settle(app, pilot)


async def _editor(app: PulseApp, pilot, name: str):
    from pulse_tui.screens.editor import EditorScreen

    await settle(app, pilot)
    await app.switch_mode("editor")
    editor = app.screen
    assert isinstance(editor, EditorScreen)
    await settle(app, pilot, lambda: editor.listed and editor.name_ is not None and bool(editor.version))
    if editor.name_ != name:
        editor.open_script(name)
        await settle(app, pilot, lambda: editor.name_ == name)
    return editor


async def scene_editor(app: PulseApp, pilot) -> None:
    """vacancies open, with its finished test run (progress, result, logs) beside the code."""
    editor = await _editor(app, pilot, "vacancies")
    resp = await app.client.list_jobs(job_filter(handler="python.vacancies"), limit=1)
    editor.query_one("#run-payload").value = '{"items": 4}'
    editor.run_job = resp.jobs[0]
    editor.fetch_run()
    await settle(app, pilot, lambda: editor.run_detail is not None)
    editor.code.cursor_location = (13, 4)
    app.paused = True
    await pilot.pause(0.2)


async def scene_editor_error(app: PulseApp, pilot) -> None:
    """A syntax error refused by the server: line and column under the code, cursor moved there."""
    editor = await _editor(app, pilot, "digest")
    editor.code.load_text(DIGEST.replace("teams = payload.get(", "teams = payload.get(("))
    await pilot.press("ctrl+s")
    await settle(app, pilot, lambda: "not saved" in editor.last_problem)
    app.paused = True
    await pilot.pause(0.2)


async def scene_ix_create(app: PulseApp, pilot) -> None:
    """`:ix nightly-report {...}` for a handler that does not exist yet."""
    await settle(app, pilot, lambda: app.screen.query_one("JobTable").total >= 1)
    app.paused = True
    await pilot.press("colon", *'ix nightly-report {"day": "mon"}', "enter")
    await settle(app, pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")


async def scene_job_children(app: PulseApp, pilot) -> None:
    """The detail of a running parent job: its children counted by status, listed in their tab."""
    await settle(app, pilot, lambda: app.screen.query_one("JobTable").total >= 7)
    table = app.screen.query_one("JobTable")
    row = next(i for i in range(table.total) if table.job_at(i) and table.job_at(i).status == "running")
    table._move(row)
    await pilot.press("enter")
    await settle(app, pilot, lambda: bool(app.screen.query("#children-table")) and app.screen.child_rows)
    app.animation_level = "none"  # the tab underline would otherwise be caught mid-slide
    app.screen.query_one("TabbedContent").active = "tab-children"
    await pilot.pause(0.2)
    app.paused = True


async def scene_jobs_split_children(app: PulseApp, pilot) -> None:
    """The split view (≥ 160 columns) on a running parent: its children counted by status in the
    side panel, beside the list of the parent and its children (each naming it)."""
    await settle(app, pilot, lambda: app.screen.query_one("JobTable").total >= 7)
    table = app.screen.query_one("JobTable")
    row = next(i for i in range(table.total) if table.job_at(i) and table.job_at(i).status == "running")
    table._move(row)
    side = app.screen.query_one("JobSide")
    await settle(
        app,
        pilot,
        lambda: (
            side.detail is not None
            and side.detail.job.id == table.job_at(row).id
            and side.child_counts is not None
            and side.child_counts.total == 6
        ),
    )
    app.paused = True


# Scenes against a server with built-in handlers only (start_children_server + populate_children).
CHILDREN_SCENES: dict[str, Scene] = {"job_children": scene_job_children}
CHILDREN_WIDE_SCENES: dict[str, Scene] = {"jobs_split_children": scene_jobs_split_children}  # 200×50


# Scenes against the pause/budget server (start_pause_server + populate_paused).
PAUSE_SCENES: dict[str, Scene] = {
    "jobs_paused": scene_jobs_paused,
    "handlers_paused": scene_handlers_paused,
}


# Scenes against the python-plugin server (start_editor_server + populate_scripts).
EDITOR_SCENES: dict[str, Scene] = {
    "editor": scene_editor,
    "editor_error": scene_editor_error,
    "ix_create": scene_ix_create,
}


SCENES: dict[str, Scene] = {
    "jobs": scene_jobs,
    "jobs_triage": scene_jobs_triage,
    "jobs_light": scene_jobs_light,
    "job_detail": scene_detail,
    "plugins": scene_plugins,
    "handlers": scene_handlers,
    "stats": scene_stats,
    "enqueue": scene_enqueue,
    "help": scene_help,
    "schedules": scene_schedules,
    "schedule_create": scene_schedule_create,
}


def svg_to_png(svg: str, path: Path) -> None:
    import cairosvg

    # Textual asks for Fira Code; map it to a monospace font that is installed so columns line up.
    fixed = svg.replace("Fira Code, monospace", "DejaVu Sans Mono, monospace")
    cairosvg.svg2png(bytestring=fixed.encode(), write_to=str(path))


async def capture(
    address: str, token: str, sizes: tuple[tuple[int, int], ...], scenes: dict[str, Scene] | None = None
) -> list[Path]:
    written: list[Path] = []
    OUT.mkdir(exist_ok=True)
    for name, scene in (SCENES if scenes is None else scenes).items():
        for w, h in sizes:
            app = make_app(address, token)
            async with app.run_test(size=(w, h)) as pilot:
                await scene(app, pilot)
                svg = app.export_screenshot(title=f"pulse-tui — {name}")
            stem = f"{name}-{w}x{h}"
            (OUT / f"{stem}.svg").write_text(svg)
            svg_to_png(svg, OUT / f"{stem}.png")
            written.append(OUT / f"{stem}.png")
    return written


def _start(base: Path, config: str):
    if str(ROOT / "tests") not in sys.path:  # run as a script: the test suite's launcher
        sys.path.insert(0, str(ROOT / "tests"))
    from conftest import start_server_process

    return start_server_process(base, config)


def start_server(base: Path):
    return _start(base, PLUGINS_CONFIG)


def start_children_server(base: Path):
    return _start(base, "")


def start_pause_server(base: Path):
    return _start(base, PAUSE_CONFIG)


def start_editor_server(base: Path):
    return _start(base, EDITOR_CONFIG)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        handle = start_server(Path(tmp))
        try:
            asyncio.run(populate(handle.address, handle.token))
            paths = asyncio.run(capture(handle.address, handle.token, ((80, 24), (120, 40), (200, 50))))
            asyncio.run(stop_running(handle.address, handle.token))
        finally:
            handle.stop()
    with tempfile.TemporaryDirectory() as tmp:
        handle = start_editor_server(Path(tmp))
        try:
            asyncio.run(populate_scripts(handle.address, handle.token))
            paths += asyncio.run(capture(handle.address, handle.token, ((80, 24), (120, 40)), EDITOR_SCENES))
        finally:
            handle.stop()
    with tempfile.TemporaryDirectory() as tmp:
        handle = start_children_server(Path(tmp))
        try:
            asyncio.run(populate_children(handle.address, handle.token))
            paths += asyncio.run(
                capture(handle.address, handle.token, ((80, 24), (120, 40)), CHILDREN_SCENES)
            )
            paths += asyncio.run(capture(handle.address, handle.token, ((200, 50),), CHILDREN_WIDE_SCENES))
            asyncio.run(stop_running(handle.address, handle.token))
        finally:
            handle.stop()
    with tempfile.TemporaryDirectory() as tmp:
        handle = start_pause_server(Path(tmp))
        try:
            asyncio.run(populate_paused(handle.address, handle.token))
            paths += asyncio.run(capture(handle.address, handle.token, ((80, 24), (120, 40)), PAUSE_SCENES))
        finally:
            handle.stop()
    for p in paths:
        print(p.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
