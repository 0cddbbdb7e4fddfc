"""The handler interface every job runner implements, and the built-in diagnostic handlers.

A handler receives a JobContext and returns a HandlerResult or raises HandlerError.
Built-ins run in-process; plugin handlers are PluginProxyHandler instances (proxy.py)
that forward to a plugin's ExecuteJob. The engine enforces timeouts and cancellation
from the outside (it cancels the task running `run`), so a handler never has to.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pulse_tui.pulse.jobs import OUTCOME_FAILED, OUTCOME_INTERRUPTED, Job, LogEntry


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HandlerError(Exception):
    """The attempt failed. `outcome` is recorded on the attempt; `retryable=False` skips retries."""

    def __init__(
        self,
        message: str,
        *,
        outcome: str = OUTCOME_FAILED,
        retryable: bool = True,
        result: HandlerResult | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome
        self.retryable = retryable
        self.result = result  # partial data (logs, progress, cost) kept even on failure


class Interrupted(HandlerError):
    """The attempt was cut short by something other than the job itself: the plugin process
    died under it (`crashed=True`), or the host shut the instance down (stop, disable). The engine
    re-runs the job without charging the attempt; crashes count towards the job's crash limit."""

    def __init__(self, cause: str, *, crashed: bool = False, result: HandlerResult | None = None) -> None:
        super().__init__(
            f"interrupted: {cause}; re-run without charge",
            outcome=OUTCOME_INTERRUPTED,
            retryable=True,
            result=result,
        )
        self.cause = cause  # what happened, e.g. "plugin demo exited with code 17 while the job ran"
        self.crashed = crashed


@dataclass(slots=True)
class HandlerResult:
    result: bytes = b""  # JSON
    progress_current: int | None = None
    progress_total: int | None = None
    cost_actual: float | None = None
    logs: list[LogEntry] = field(default_factory=list)
    plugin_version: str = ""


class JobContext:
    """What a running handler may see and do. Progress/log/cost calls are cheap and coalesced
    by the engine (the last value wins; logs are appended)."""

    __slots__ = ("job", "attempt", "timeout", "_on_progress", "_on_log", "_on_cost")

    def __init__(
        self,
        job: Job,
        attempt: int,
        timeout: float | None,
        on_progress: Callable[[int, int], None],
        on_log: Callable[[LogEntry], None],
        on_cost: Callable[[float], None],
    ) -> None:
        self.job = job
        self.attempt = attempt
        self.timeout = timeout
        self._on_progress = on_progress
        self._on_log = on_log
        self._on_cost = on_cost

    @property
    def payload(self) -> bytes:
        return self.job.payload

    def payload_json(self) -> object:
        return json.loads(self.job.payload or b"{}")

    def progress(self, current: int, total: int) -> None:
        self._on_progress(int(current), int(total))

    def cost(self, value: float) -> None:
        self._on_cost(float(value))

    def log(self, level: str, message: str, stage: str = "", metadata: str = "") -> None:
        self._on_log(LogEntry(self.job.id, self.attempt, rfc3339_now(), level, message, stage, metadata))


class Handler(Protocol):
    """Something that can run a job. `plugin` is "" for built-ins."""

    name: str
    plugin: str

    async def run(self, ctx: JobContext) -> HandlerResult: ...


class Router(Protocol):
    """Maps handler names as enqueued (bare or `plugin/name`) to handlers. Implemented by
    registry.Registry. `version` changes whenever the routable set changes."""

    version: int

    def resolve(self, name: str) -> Handler | None: ...

    def routable(self) -> frozenset[str]: ...

    def suggest(self, name: str) -> list[str]: ...


# ---------------------------------------------------------------- built-ins


def _obj(ctx: JobContext) -> dict[str, Any]:
    try:
        data = ctx.payload_json()
    except ValueError as exc:
        raise HandlerError(f"payload is not JSON: {exc}", retryable=False) from None
    return data if isinstance(data, dict) else {}


class NoopHandler:
    name = "pulse.noop"
    plugin = ""

    async def run(self, ctx: JobContext) -> HandlerResult:
        return HandlerResult(result=b"{}")


class SleepHandler:
    """`{"seconds": s, "steps": n}`: sleeps s seconds in n steps, reporting progress per step."""

    name = "pulse.sleep"
    plugin = ""

    async def run(self, ctx: JobContext) -> HandlerResult:
        p = _obj(ctx)
        try:
            seconds = float(p.get("seconds", 1.0))
            steps = max(1, int(p.get("steps", 1)))
        except (TypeError, ValueError):
            raise HandlerError(
                'pulse.sleep wants {"seconds": number, "steps": integer}', retryable=False
            ) from None
        ctx.progress(0, steps)
        for i in range(1, steps + 1):
            await asyncio.sleep(seconds / steps)
            ctx.progress(i, steps)
        ctx.log("info", f"slept {seconds:g}s in {steps} steps")
        return HandlerResult(result=json.dumps({"slept": seconds, "steps": steps}).encode())


class FailHandler:
    """`{"error": "..."}`: always fails with that message."""

    name = "pulse.fail"
    plugin = ""

    async def run(self, ctx: JobContext) -> HandlerResult:
        p = _obj(ctx)
        msg = str(p.get("error") or "pulse.fail: failed as asked")
        ctx.log("error", msg)
        raise HandlerError(msg)


def builtin_handlers() -> list[Handler]:
    return [NoopHandler(), SleepHandler(), FailHandler()]


class StaticRouter:
    """A fixed set of handlers by name (the built-ins, or handlers a test or embedding registers).
    The plugin-aware router is registry.Registry."""

    def __init__(self, handlers: list[Handler] | None = None) -> None:
        self._by_name: dict[str, Handler] = {}
        self._names: frozenset[str] = frozenset()
        self.version = 0
        for h in handlers if handlers is not None else builtin_handlers():
            self.add(h)

    def add(self, handler: Handler) -> None:
        self._by_name[handler.name] = handler
        self._names = frozenset(self._by_name)
        self.version += 1

    def remove(self, name: str) -> None:
        self._by_name.pop(name, None)
        self._names = frozenset(self._by_name)
        self.version += 1

    def resolve(self, name: str) -> Handler | None:
        return self._by_name.get(name)

    def routable(self) -> frozenset[str]:
        return self._names

    def suggest(self, name: str) -> list[str]:
        import difflib

        return difflib.get_close_matches(name, list(self._names), n=3, cutoff=0.6)
