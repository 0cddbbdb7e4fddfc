"""The split view's right half (≥ 160 columns): the selected job's detail beside the list."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import Static

from pulse_tui.client import ClientError, job_filter
from pulse_tui.console import find_console
from pulse_tui.protocol import operator_pb2
from pulse_tui.vocab import Capability, EndpointMode, JobStatus
from pulse_tui.widgets import fmt

WIDE = 160  # columns from which the jobs screen shows the list and the detail side by side
FOLLOW_DELAY = 0.15  # seconds the cursor rests on a row before its detail is fetched
MAX_PAYLOAD_CHARS = 2000
MAX_LOG_LINES = 12
CHILD_COUNT_CAP = 10_000  # children counted per status at most (here and on the job detail)
CHILD_ORDER: dict[str, int] = {  # the children's counts: live ones first
    s: i
    for i, s in enumerate(
        (
            JobStatus.RUNNING,
            JobStatus.QUEUED,
            JobStatus.PAUSED,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        )
    )
}


class JobSide(VerticalScroll, can_focus=False):
    """Detail of the job under the cursor; fetched when the cursor rests, kept live by updates."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = ""
        self.detail: operator_pb2.JobDetail | None = None
        self.child_counts: operator_pb2.CountJobsResponse | None = None  # its children by status
        self._timer: Timer | None = None
        self.plain = ""  # what is shown, as text (tests, screen readers)

    def compose(self) -> ComposeResult:
        yield Static("", id="job-side-body")

    def follow(self, job: operator_pb2.Job | None) -> None:
        """The cursor moved: show this job (fetched after a short rest)."""
        if not self.display:
            return
        if job is None:
            self.job_id, self.detail = "", None
            self._show()
            return
        if job.id == self.job_id and self.detail is not None:
            self.detail.job.CopyFrom(job)
            self._show()
            return
        self.job_id = job.id
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(FOLLOW_DELAY, self.fetch)

    def jobs_changed(self, jobs: list[operator_pb2.Job]) -> None:
        """Jobs changed: refetch (once) when one is the job shown, or one of its children."""
        if self.display and self.job_id and any(self.job_id in (j.id, j.parent_job_id) for j in jobs):
            self.fetch()

    def others_changed(self) -> None:
        """Jobs not shown changed: the shown job's children may be among them."""
        if self.display and self.job_id:
            self.fetch()

    @work(exclusive=True, group="job-side", exit_on_error=False)
    async def fetch(self) -> None:
        job_id = self.job_id
        console = find_console(self.app)
        client = console.client if console is not None else None
        if not job_id or client is None or not client.can(Capability.DETAIL):
            return
        try:
            detail = await client.get_job(job_id)
            children = (
                await client.count_jobs(job_filter(parent_job_id=job_id), cap=CHILD_COUNT_CAP)
                if client.mode == EndpointMode.OPERATOR  # compat mode counts by listing everything
                else None
            )
        except ClientError as exc:
            if job_id == self.job_id:
                self.detail = None
                self.query_one("#job-side-body", Static).update(
                    Text(f"{job_id}: {exc.message}", style="italic")
                )
            return
        if job_id == self.job_id:
            self.detail, self.child_counts = detail, children
            self._show()

    def _show(self) -> None:
        body = self.query_one("#job-side-body", Static)
        d = self.detail
        if d is None or d.job.id != self.job_id:
            body.update(Text("…" if self.job_id else "No job selected.", style="italic"))
            return
        j = d.job
        now = fmt.app_now(self.app)
        head = Text()
        head.append(f"{j.id}\n", style="bold")
        head.append(f"{j.handler}", style="bold")
        if j.plugin:
            version = f" {j.plugin_version}" if j.plugin_version else ""
            head.append(f"  (plugin {j.plugin}{version})", style="dim")
        head.append("\n")
        head.append(
            f"{fmt.STATUS_ICONS.get(j.status, '?')} {j.status}", style=fmt.STATUS_STYLES.get(j.status, "")
        )
        wait = fmt.waiting(j, now)
        if wait:  # queued for a future time: when, and whether it is a retry's backoff
            what = "retry at" if wait == "retry" else "runs at"
            head.append(
                f" · {what} {fmt.clock(j.run_at, now, fmt.app_tz(self.app))} (in {fmt.until(j.run_at - now)})"
            )
        head.append(f"   {fmt.job_age(j, now)}   attempts {j.run_attempts or j.attempts}")
        head.append(f" of {j.max_attempts}" if j.max_attempts else "")
        if j.retry_count:
            head.append(f", {j.retry_count} operator retr{'y' if j.retry_count == 1 else 'ies'}")
        head.append("\n")
        if j.source or j.parent_job_id:
            head.append(f"source {j.source or '—'}   parent {j.parent_job_id or '—'}\n", style="dim")
        kids = self.child_counts
        if kids is not None and kids.total:
            head.append_text(children_line(kids))
        head.rstrip()
        parts: list[Text] = [head]
        if j.error and j.status not in ("running", "completed"):
            parts.append(Text(f"\nerror\n{j.error}", style=fmt.STATUS_STYLES["failed"]))
        parts.append(Text("\npayload", style="bold dim"))
        parts.append(Text(_pretty(d.payload)))
        if d.result:
            parts.append(Text("\nresult", style="bold dim"))
            parts.append(Text(_pretty(d.result)))
        if d.attempts:
            parts.append(Text("\nattempts", style="bold dim"))
            for a in d.attempts:
                took = fmt.duration(a.ended_at - a.started_at) if a.ended_at else "running"
                line = Text(f"{a.number:>3} ")
                line.append(f"{a.outcome:<12}", style=fmt.OUTCOME_STYLES.get(a.outcome, ""))
                line.append(f" {took:>8}  ")
                line.append(a.error.splitlines()[0] if a.error else "", style="dim")
                parts.append(line)
        if d.logs:
            parts.append(Text("\nlogs (latest)", style="bold dim"))
            for e in d.logs[-MAX_LOG_LINES:]:
                line = Text(f"{e.timestamp[11:19]} ")
                line.append(f"{e.level:<5} ", style=fmt.LEVEL_STYLES.get(e.level, ""))
                line.append(e.message)
                parts.append(line)
        self.plain = "\n".join(t.plain for t in parts if isinstance(t, Text))
        body.update(Group(*parts))


def children_line(counts: operator_pb2.CountJobsResponse, *, dim: bool = True) -> Text:
    """ "6 children: 1 running · 2 queued · 3 completed" (capped counts say 10k+); the job detail
    and the split view both say it so."""
    label = "dim" if dim else ""
    total = fmt.count(counts.total, counts.capped, counts.cap)
    t = Text()
    t.append(f"{total} {'child' if counts.total == 1 else 'children'}: ", style=label)
    parts = sorted(
        ((s, n) for s, n in counts.by_status.items() if n), key=lambda p: CHILD_ORDER.get(p[0], 99)
    )
    for i, (st, n) in enumerate(parts):
        if i:
            t.append(" · ", style=label)
        t.append(
            f"{fmt.count(n, counts.capped and n >= counts.cap, counts.cap)} {st}",
            style=fmt.STATUS_STYLES.get(st, ""),
        )
    return t


def _pretty(raw: bytes) -> str:
    if not raw:
        return "—"
    try:
        text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        text = raw.decode("utf-8", "replace")
    return text if len(text) <= MAX_PAYLOAD_CHARS else text[:MAX_PAYLOAD_CHARS] + f"\n… ({len(text):,} chars)"
