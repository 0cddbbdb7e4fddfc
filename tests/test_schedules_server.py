"""Schedules on a real server: plugin-declared schedules (a raw plugin process), the plugin
token's limits on ScheduleService, [[schedules]] from the config, and the OperatorService RPCs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import grpc
import pytest

from pulse_tui.config import ConfigError, parse_config
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as opg
from pulse_tui.protocol import schedule_pb2 as sp
from pulse_tui.protocol import schedule_pb2_grpc as spg
from pulse_tui.pulse import schedules as S
from pulse_tui.pulse.server import PulseServer, ServerSettings

PLUGIN = Path(__file__).resolve().parent / "plugins" / "scheduling.py"
DOWN_SECS = 30.0 if os.environ.get("PULSE_SOAK") == "full" else 7.0  # `make soak`: the full 30 s stop


async def wait_until(sched: S.Scheduler, check, timeout: float = 15.0, what: str = "condition"):
    changed = asyncio.Event()
    sched.listeners.append(lambda s: changed.set())
    try:
        deadline = time.monotonic() + timeout
        while True:
            changed.clear()
            result = await check()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                async with asyncio.timeout(left):
                    await changed.wait()
            except TimeoutError:
                pass
    finally:
        sched.listeners.pop()


def config_text(tmp_path: Path, extra: str = "") -> str:
    return f"""
[[plugins]]
name = "sched"
command = ["{sys.executable}", "{PLUGIN}"]
env = {{ SCHEDULES_FILE = "{tmp_path / "declared.json"}", INFO_FILE = "{tmp_path / "info.json"}" }}
{extra}
"""


async def start(tmp_path: Path, text: str) -> PulseServer:
    cfg = parse_config(text, file="pulse.toml", base_dir=tmp_path)
    srv = PulseServer(ServerSettings(listen="127.0.0.1:0", data_dir=tmp_path / "data", grace=1.0), cfg)
    await srv.start()
    return srv


def declare(tmp_path: Path, items: list[dict]) -> None:
    (tmp_path / "declared.json").write_text(json.dumps(items))


async def test_plugin_declared_schedules_follow_qntx_semantics(tmp_path):
    declare(
        tmp_path,
        [
            {"handler_name": "tick", "interval_seconds": 3600, "enabled_by_default": True},
            {"handler_name": "tock", "interval_seconds": 60, "enabled_by_default": False},
        ],
    )
    srv = await start(tmp_path, config_text(tmp_path))
    try:
        sched = srv.scheduler
        assert sched is not None
        mine = await sched.list(S.ScheduleFilter(owner="plugin:sched"))
        by_handler = {s.handler: s for s in mine}
        assert set(by_handler) == {"sched/tick", "sched/tock"}  # namespaced to the plugin
        tick, tock = by_handler["sched/tick"], by_handler["sched/tock"]
        assert tick.state == S.ACTIVE and tock.state == S.PAUSED  # enabled_by_default false → paused

        async def tick_ran():  # first run at once, although the interval is an hour
            exs = await sched.executions(tick.id)
            return exs if exs and exs[0].status == S.EX_COMPLETED else None

        [ex] = await wait_until(sched, tick_ran, what="the declared schedule's first run")
        job = await srv.engine.get_job(ex.job_id)
        assert job.source == f"schedule:{tick.id}" and job.plugin == "sched"

        # the plugin token: its own schedules only; the admin token: any
        info = json.loads((tmp_path / "info.json").read_text())
        assert info["endpoint"].endswith(f":{srv.port}")
        other = await sched.create("pulse.noop", interval_secs=3600)
        async with grpc.aio.insecure_channel(info["endpoint"]) as ch:
            stub = spg.ScheduleServiceStub(ch)
            r = await stub.PauseSchedule(
                sp.PauseScheduleRequest(auth_token=info["token"], schedule_id=other.id)
            )
            assert not r.success and "not owned by plugin 'sched'" in r.error
            r = await stub.GetSchedule(sp.GetScheduleRequest(auth_token=info["token"], schedule_id=other.id))
            assert not r.success and "not owned" in r.error
            c = await stub.CreateSchedule(
                sp.CreateScheduleRequest(
                    auth_token=info["token"], handler_name="sched/tock", interval_seconds=30
                )
            )
            assert c.success, c.error
            assert (await sched.get(c.schedule_id)).owner == "plugin:sched"
            r = await stub.PauseSchedule(
                sp.PauseScheduleRequest(auth_token=info["token"], schedule_id=tick.id)
            )
            assert r.success  # its own
        assert (await sched.get(other.id)).state == S.ACTIVE  # refused calls changed nothing

        # reload with a changed interval and without `tock`: tick updated in place (pause kept),
        # tock withdrawn
        declare(tmp_path, [{"handler_name": "tick", "interval_seconds": 120, "enabled_by_default": True}])
        await srv.host.reload("sched")
        again = await sched.get(tick.id)
        assert again.interval_secs == 120 and again.state == S.PAUSED  # the pause survived the reload
        assert (await sched.get(tock.id)).state == S.DELETED
        # re-declared later: a fresh schedule, not the tombstone
        declare(
            tmp_path,
            [
                {"handler_name": "tick", "interval_seconds": 120, "enabled_by_default": True},
                {"handler_name": "tock", "interval_seconds": 60, "enabled_by_default": True},
            ],
        )
        await srv.host.reload("sched")
        live = {s.handler: s for s in await sched.list(S.ScheduleFilter(owner="plugin:sched"))}
        assert live["sched/tock"].id != tock.id and live["sched/tock"].state == S.ACTIVE
        assert live["sched/tick"].id == tick.id
    finally:
        await srv.stop(0)
    # a server restart keeps the operator's pause as well
    srv = await start(tmp_path, config_text(tmp_path))
    try:
        assert (await srv.scheduler.get(tick.id)).state == S.PAUSED
    finally:
        await srv.stop(0)


async def test_config_schedules_are_reconciled_at_start(tmp_path):
    declare(tmp_path, [])
    text = config_text(
        tmp_path,
        """
[[schedules]]
handler = "pulse.noop"
every = "10m"
payload = { hello = "world" }

[[schedules]]
handler = "sched/tick"
cron = "0 3 * * *"
timezone = "Europe/Paris"
overlap = "allow"
""",
    )
    srv = await start(tmp_path, text)
    try:
        mine = {s.handler: s for s in await srv.scheduler.list(S.ScheduleFilter(owner="config"))}
        noop, tick = mine["pulse.noop"], mine["sched/tick"]
        assert noop.interval_secs == 600 and json.loads(noop.payload) == {"hello": "world"}
        assert noop.next_run_at > time.time() + 590  # config schedules wait for their cadence
        assert tick.cron == "0 3 * * *" and tick.timezone == "Europe/Paris" and tick.overlap == "allow"
    finally:
        await srv.stop(0)
    # the next start: one dropped from the file is withdrawn, the other changed in place
    text2 = config_text(tmp_path, '\n[[schedules]]\nhandler = "pulse.noop"\nevery = "5m"\n')
    srv = await start(tmp_path, text2)
    try:
        assert (await srv.scheduler.get(noop.id)).interval_secs == 300
        assert (await srv.scheduler.get(tick.id)).state == S.DELETED
    finally:
        await srv.stop(0)


@pytest.mark.parametrize(
    "body, message",
    [
        ('handler = "x"\n', "give exactly one of 'every'"),
        ('handler = "x"\nevery = "soon"\n', ":5: schedules[0].every: interval 'soon' is not a duration"),
        (
            'handler = "x"\ncron = "61 * * * *"\n',
            "schedules[0].cron: cron expression '61 * * * *' is not valid",
        ),
        ('handler = "x"\ncron = "0 3 * * *"\ntimezone = "Mars/Base"\n', "unknown time zone 'Mars/Base'"),
        (
            'handler = "x"\nevery = 60\noverlap = "queue"\n',
            "schedules[0].overlap: expected one of skip, allow",
        ),
        ('handler = "x"\nevery = 60\npayload = "{nope"\n', "schedules[0].payload: not JSON"),
        ('handler = "x"\nevery = 60\nwhen = 1\n', "schedules[0].when: unknown key"),
    ],
)
def test_config_schedule_errors_name_file_line_and_key(tmp_path, body, message):
    with pytest.raises(ConfigError) as err:
        parse_config("# schedules\n\n[[schedules]]\n" + body, file="pulse.toml", base_dir=tmp_path)
    assert message in str(err.value) and str(err.value).startswith("pulse.toml:")


async def test_operator_schedule_rpcs_and_events(inproc_server):
    srv = inproc_server
    admin, ro = srv.metadata, srv.readonly_metadata
    async with grpc.aio.insecure_channel(srv.address) as ch:
        stub = opg.OperatorServiceStub(ch)
        events = stub.WatchSchedules(op.WatchSchedulesRequest(), metadata=admin)
        first = await events.read()
        assert first.kind == "heartbeat"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateSchedule(
                op.CreateScheduleRequest(handler="pulse.noop", interval_secs=5), metadata=ro
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateSchedule(
                op.CreateScheduleRequest(handler="pulse.noop", cron="0 3 * * *", timezone="Nowhere/Else"),
                metadata=admin,
            )
        assert (
            err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            and "unknown time zone" in err.value.details()
        )
        s = await stub.CreateSchedule(
            op.CreateScheduleRequest(handler="pulse.noop", cron="*/5 * * * *", timezone="Europe/Paris"),
            metadata=admin,
        )
        assert s.cadence == "*/5 * * * * Europe/Paris" and s.state == "active"
        ev = await events.read()
        assert ev.kind == "upsert" and ev.schedule.id == s.id
        run = await stub.RunSchedule(op.ScheduleIdRequest(id=s.id), metadata=admin)
        assert run.execution.job_id and run.schedule.next_run_at == s.next_run_at  # cadence unchanged
        paused = await stub.PauseSchedule(op.ScheduleIdRequest(id=s.id), metadata=admin)
        assert paused.state == "paused"
        upd = await stub.UpdateSchedule(op.UpdateScheduleRequest(id=s.id, interval_secs=90), metadata=admin)
        assert upd.cadence == "every 1m30s" and upd.cron == ""
        detail = await stub.GetSchedule(op.GetScheduleRequest(id=s.id), metadata=ro)
        assert detail.schedule.state == "paused" and [e.id for e in detail.executions] == [run.execution.id]
        job = await stub.GetJob(op.GetJobRequest(id=run.execution.job_id), metadata=ro)
        assert job.job.schedule_id == s.id and job.job.source == f"schedule:{s.id}"
        listed = await stub.ListSchedules(op.ListSchedulesRequest(states=["paused"]), metadata=ro)
        assert [x.id for x in listed.schedules] == [s.id]
        resumed = await stub.ResumeSchedule(op.ScheduleIdRequest(id=s.id), metadata=admin)
        assert resumed.state == "active"
        gone = await stub.DeleteSchedule(op.ScheduleIdRequest(id=s.id), metadata=admin)
        assert gone.state == "deleted"
        assert (await stub.ListSchedules(op.ListSchedulesRequest(), metadata=ro)).schedules == []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetSchedule(op.GetScheduleRequest(id="nope"), metadata=ro)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        events.cancel()


@pytest.mark.slow  # `make soak` runs it with the full 30 s stop; `make test` with 7 s
async def test_missed_runs_after_a_server_stop_run_once(tmp_path):
    """A real stop: runs due while the server was down are coalesced into one run at start."""
    settings = ServerSettings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", grace=1.0, retention_secs=None
    )
    srv = PulseServer(settings)
    await srv.start()
    try:
        s = await srv.scheduler.create("pulse.noop", interval_secs=2, at_once=True)

        async def first_done():
            exs = await srv.scheduler.executions(s.id)
            return exs if exs and exs[-1].status == S.EX_COMPLETED else None

        await wait_until(srv.scheduler, first_done, what="the first run")
    finally:
        await srv.stop(0)
    await asyncio.sleep(DOWN_SECS)  # the server is down (the scenario itself, not synchronisation)
    srv = PulseServer(settings)
    await srv.start()
    try:
        before = len(await srv.scheduler.executions(s.id))

        async def caught_up():
            exs = await srv.scheduler.executions(s.id)
            return exs if len(exs) > before else None

        exs = await wait_until(srv.scheduler, caught_up, what="the run after the restart")
        newest = exs[0]
        assert "coalesced" in newest.note and "missed run" in newest.note
        missed = int(newest.note.split("coalesced ")[1].split()[0])
        assert missed >= 2
        got = await srv.scheduler.get(s.id)
        assert got.next_run_at > time.time() - 0.5  # back on cadence, not replaying the backlog
        # exactly one run stood for the downtime (no burst): the next one is a cadence away
        assert len(await srv.scheduler.executions(s.id)) <= before + 2
    finally:
        await srv.stop(0)
