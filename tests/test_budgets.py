"""Spend budgets against a real in-process server and a real plugin process whose jobs report a
cost: a reached budget holds the jobs it covers (`paused`, budget_exceeded), an operator's resume
lets one run over budget, and the spend is on ServerInfo and QNTX's PulseState."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import grpc
import pytest

from pulse_tui.config import BudgetConfig, Limits, parse_config
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qg
from pulse_tui.pulse import budgets as bud
from tests.test_pause import running, until

PLUGIN = Path(__file__).parent / "plugins" / "costly.py"


def config(tmp: Path, budgets: str = ""):
    text = textwrap.dedent(
        f"""
        [[plugins]]
        name = "costly"
        command = [{sys.executable!r}, {str(PLUGIN)!r}]
        """
    )
    return parse_config(text + budgets, base_dir=tmp)


async def test_budget_of_1_with_jobs_costing_04_holds_the_third(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    budgets = BudgetConfig(total=Limits(daily=1.0))
    async with running(tmp_path / "d", config=cfg, budgets=budgets) as (srv, client):
        done = []
        for _ in range(2):
            job = await client.enqueue("cost.run", {"cost": 0.4})

            async def finished(job_id: str = job.id) -> bool:
                return (await client.get_job(job_id)).job.status == "completed"

            await until(finished, "a 0.4 job completes")
            done.append(job.id)
        info = await client.server_info()
        assert info.spend_today == pytest.approx(0.8)
        assert [(b.period, b.limit, b.spent) for b in info.budgets] == [("daily", 1.0, pytest.approx(0.8))]
        assert info.budgets[0].reached  # 0.8 + an average job (0.4) would go over 1.0
        third = await client.enqueue("cost.run", {"cost": 0.4})
        assert third.status == "paused" and third.pause_reason == "budget_exceeded"
        other = await client.enqueue("pulse.noop", {})  # the total budget covers every handler
        assert other.status == "paused"
        async with grpc.aio.insecure_channel(srv.address) as ch:
            g = await qg.QueueServiceStub(ch).GetJob(
                qp.GetJobRequest(auth_token=client.token, job_id=third.id)
            )
        st = g.job.pulse_state
        assert st.is_paused and st.pause_reason == "budget_exceeded"
        assert (st.spend_today, st.spend_this_month) == (pytest.approx(0.8), pytest.approx(0.8))
        assert st.budget_remaining == pytest.approx(0.2)
        # an operator's resume lets it run once, over the budget; the other stays held
        await client.resume(third.id)

        async def third_done() -> bool:
            return (await client.get_job(third.id)).job.status == "completed"

        await until(third_done, "the released job runs over the budget")
        assert (await client.get_job(other.id)).job.status == "paused"
        assert (await client.server_info()).spend_today == pytest.approx(1.2)


async def test_a_jobs_own_cost_estimate_decides_whether_it_would_go_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "would this job go over" check uses the job's cost_estimate when it has one, the
    period's average job cost when it has none: with 0.8 of 1.0 spent by two 0.4 jobs the budget
    is reached by the average (0.4 > 0.2 left), yet a job estimated at 0.1 runs; with 0.2 spent
    (not reached), a job estimated at 0.9 is held while one without an estimate runs; a queued
    job whose estimate stops fitting as the spend grows is held by the next re-check."""
    monkeypatch.setattr("pulse_tui.pulse.engine.BUDGET_RECHECK_SECS", 0.2)  # not once a second
    cfg = config(tmp_path)
    budgets = BudgetConfig(total=Limits(daily=1.0))
    async with running(tmp_path / "d", config=cfg, budgets=budgets) as (srv, client):

        async def run(cost: float, estimate: float = 0.0) -> str:
            job = await client.enqueue("cost.run", {"cost": cost}, cost_estimate=estimate)
            assert job.status == "queued", job

            async def done() -> bool:
                return (await client.get_job(job.id)).job.status == "completed"

            await until(done, f"a {cost} job completes")
            return job.id

        await run(0.2)
        big = await client.enqueue("cost.run", {"cost": 0.9}, cost_estimate=0.9)
        assert (big.status, big.pause_reason) == ("paused", "budget_exceeded")
        assert not (await client.server_info()).budgets[0].reached  # 0.2 + 0.2 (the average) fits
        later = await client.enqueue("cost.run", {"cost": 0.7}, cost_estimate=0.7, delay_secs=3600)
        assert later.status == "queued"  # 0.7 fits in the 0.8 left
        await run(0.2)  # no estimate: the average (0.2) fits in the 0.8 left

        async def later_held() -> bool:
            job = (await client.get_job(later.id)).job
            return (job.status, job.pause_reason) == ("paused", "budget_exceeded")

        await until(later_held, "the queued job estimated at 0.7 to be held (0.6 left)")
        assert not (await client.server_info()).budgets[0].reached
        await run(0.4, estimate=0.4)  # 0.4 + 0.4 = 0.8: fits exactly
        assert (await client.server_info()).budgets[0].reached  # 0.8 + 0.27 (the average) > 1.0
        plain = await client.enqueue("cost.run", {"cost": 0.1})
        assert (plain.status, plain.pause_reason) == ("paused", "budget_exceeded")
        await run(0.1, estimate=0.1)  # its own estimate fits the 0.2 left
        assert (await client.get_job(big.id)).job.status == "paused"  # 0.9 never fitted
        assert (await client.server_info()).spend_today == pytest.approx(0.9)


async def test_raised_limit_at_restart_releases_and_handler_budgets_cover_their_handler(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    cfg = config(tmp_path)
    tight = BudgetConfig(handlers={"cost.run": Limits(daily=0.5)})
    async with running(data, config=cfg, budgets=tight) as (_, client):
        first = await client.enqueue("cost.run", {"cost": 0.5})

        async def first_done() -> bool:
            return (await client.get_job(first.id)).job.status == "completed"

        await until(first_done, "the first job completes")
        held = await client.enqueue("cost.run", {"cost": 0.1})
        assert held.status == "paused" and held.pause_reason == "budget_exceeded"
        free = await client.enqueue("cost.other", {"cost": 5.0})  # not covered by cost.run's budget
        assert free.status == "queued"
    async with running(data, config=cfg, budgets=BudgetConfig(handlers={"cost.run": Limits(daily=10)})) as (
        _,
        client,
    ):

        async def released() -> bool:
            return (await client.get_job(held.id)).job.status == "completed"

        await until(released, "the held job runs once the limit is raised")


def test_budgets_config_and_spend_book() -> None:
    cfg = parse_config('[budgets]\ndaily = 2\nmonthly = 30.5\n[budgets.handlers."demo.sleep"]\ndaily = 0.5\n')
    assert cfg.budgets.total == Limits(2.0, 30.5) and cfg.budgets.handlers == {"demo.sleep": Limits(0.5, 0)}
    for bad, message in (
        ("[budgets]\ndaily = -1\n", "must not be negative"),
        ("[budgets]\nweekly = 1\n", "unknown key"),
        ('[budgets.handlers."demo/x"]\ndaily = 1\n', "bare name"),
    ):
        try:
            parse_config(bad)
        except Exception as exc:
            assert message in str(exc), (bad, exc)
        else:
            raise AssertionError(f"accepted {bad!r}")
    day, month = bud.period_starts(86400 * 40 + 3600)  # 1970-02-10 01:00 UTC
    assert (day, month) == (86400 * 40, 86400 * 31)
    book = bud.SpendBook()
    book.load(
        day, month, [("demo/demo.sleep", day, 0.3, 1), ("demo.sleep", month, 0.2, 2), ("x", day, 1.0, 1)]
    )
    assert book.spent(bud.DAILY, "demo.sleep").total == 0.3
    assert (
        book.spent(bud.MONTHLY, "demo.sleep").total == pytest.approx(0.5)
        and book.spent(bud.MONTHLY).jobs == 4
    )
    states = bud.states(cfg.budgets, book)
    assert [(s.scope, s.period, s.reached) for s in states] == [
        ("", "daily", False),  # 1.3 + 1.3/2 = 1.95 <= 2
        ("", "monthly", False),
        ("demo.sleep", "daily", True),  # 0.3 + 0.3 > 0.5
    ]
    assert bud.held_scopes(states) == (False, {"demo.sleep"})
    assert bud.remaining_for(states, "demo/demo.sleep") == pytest.approx(0.2)
