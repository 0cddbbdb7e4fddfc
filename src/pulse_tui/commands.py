"""The console's commands: the `:` command table, the `:ix` routing and the command palette.

Every `:name [args]` command is registered in :func:`command_table`, the one place that says which
commands exist; screens do not register any. ``:ix <command> [json]`` enqueues ``python.<command>``;
when no such handler exists it asks "Handler python.<command> not found. Create it?", opens the
handler editor with the new-handler template and, after a successful save, the editor runs the same
line and tells the job id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from pulse_tui.client import ClientError
from pulse_tui.console import console_of
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.screens.editor import EditorScreen
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.script_template import NAME_RULE, handler_of, valid_name
from pulse_tui.vocab import Capability, Reason

if TYPE_CHECKING:
    from pulse_tui.app import PulseApp

CommandHandler = Callable[[str], object]  # a coroutine is awaited; workers run on their own


@dataclass(slots=True)
class Command:
    name: str
    help: str
    handler: CommandHandler


class CommandTable:
    """The `:` commands by name, in the order they were registered (the command line's placeholder
    and the palette list them so). Hidden ones (`:q`) run but are not listed."""

    def __init__(self, app: PulseApp) -> None:
        self.app = app
        self._listed: dict[str, Command] = {}
        self._hidden: dict[str, Command] = {}

    def register(self, name: str, help_text: str, handler: CommandHandler, *, hidden: bool = False) -> None:
        """Add a `:name [args]` command."""
        (self._hidden if hidden else self._listed)[name] = Command(name, help_text, handler)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._listed.values())

    def names(self) -> list[str]:
        """The listed names in registration order."""
        return list(self._listed)

    def get(self, name: str) -> Command | None:
        return self._listed.get(name) or self._hidden.get(name)

    async def run(self, line: str) -> None:
        """Run one command line (`:name args`, the colon optional)."""
        name, _, args = line.strip().lstrip(":").partition(" ")
        cmd = self.get(name)
        if cmd is None:
            close = [c for c in self._listed if c.startswith(name[:2])] if name else []
            hint = f" — did you mean :{close[0]}?" if close else ""
            self.app.notify(f"unknown command :{name}{hint} (try :help)", severity="warning")
            return
        result = cmd.handler(args.strip())
        if asyncio.iscoroutine(result):
            await result


def command_table(app: PulseApp) -> CommandTable:
    """Every `:` command of the console."""
    table = CommandTable(app)
    for name, help_text, handler in (
        ("jobs", "Jobs: the live job table", lambda _a: app.goto("jobs")),
        ("plugins", "Plugins: state, health, reload, enable/disable", lambda _a: app.goto("plugins")),
        ("handlers", "Handlers: owners and naming conflicts", lambda _a: app.goto("handlers")),
        (
            "stats",
            "Stats: throughput, error rates and latencies per handler",
            lambda _a: app.goto("stats"),
        ),
        ("schedules", "Schedules: recurring jobs, their runs", lambda _a: app.goto("schedules")),
        ("help", "Keys on this screen", lambda _a: app.action_help()),
        ("reconnect", "Reconnect to the server now", lambda _a: app.reconnect_now()),
        (
            "purge",
            "Delete every finished job matching the filter (asks first)",
            _on_jobs(app, lambda jobs, _args: jobs.purge()),
        ),
        (
            "pause-all",
            "Pause every queued job matching the filter (asks first)",
            _on_jobs(app, lambda jobs, _args: jobs.pause_all()),
        ),
        (
            "resume-all",
            "Resume every paused job matching the filter (asks first)",
            _on_jobs(app, lambda jobs, _args: jobs.resume_all()),
        ),
        ("budgets", "Spend budgets: each limit, its spend and what is left", lambda _a: app.show_budgets()),
        (
            "sort",
            "Sort the jobs: :sort COLUMN [asc|desc] (alone: newest first)",
            _on_jobs(app, lambda jobs, args: jobs.sort(args)),
        ),
        (
            "export",
            "Write the filtered jobs to FILE (.csv, else JSON Lines)",
            _on_jobs(app, lambda jobs, args: jobs.export(args)),
        ),
        ("quit", "Quit pulse-tui", lambda _a: app.request_quit()),
    ):
        table.register(name, help_text, handler)
    table.register("q", "Quit", lambda _a: app.request_quit(), hidden=True)
    table.register(
        "scripts",
        "Handler editor: python.<name> scripts (editor [name] opens one)",
        lambda a: open_editor(app, a),
    )
    table.register("editor", "Handler editor (same as :scripts)", lambda a: open_editor(app, a))
    table.register(
        "ix", "ix <command> [json]: run python.<command>; offers to create it", lambda a: run_ix(app, a)
    )
    return table


def _on_jobs(app: PulseApp, action: Callable[[JobsScreen, str], object]) -> CommandHandler:
    """A `:command` run by the jobs screen (switching to it first)."""

    def run(args: str) -> None:
        app.goto("jobs")
        screen = app.screen
        if isinstance(screen, JobsScreen):
            action(screen, args)

    return run


# ---------------------------------------------------------------------- the handler editor and `:ix`


def is_unknown_handler(exc: ClientError) -> bool:
    """The queue refused an enqueue because no plugin announces the handler."""
    return exc.reason == Reason.UNKNOWN_HANDLER


async def _editor(app: PulseApp) -> EditorScreen | None:
    await app.switch_mode("editor")
    screen = app.screen
    return screen if isinstance(screen, EditorScreen) else None


async def open_editor(app: PulseApp, args: str) -> None:
    """`:scripts [name]` / `:editor [name]`: the handler editor, with `name` open (or new)."""
    name = args.strip()
    if name and not valid_name(name):
        app.notify(f"{name!r} is not a script name: use {NAME_RULE}", severity="warning")
        name = ""
    screen = await _editor(app)
    if screen is not None and name:
        known = any(s.name == name for s in screen.scripts)
        screen.switch_to(name, new=not known and screen.listed)


async def run_ix(app: PulseApp, args: str) -> None:
    """`:ix <command> [json]` — enqueue python.<command>, or offer to create it."""
    command, _, raw = args.strip().partition(" ")
    raw = raw.strip() or "{}"
    if not command:
        app.notify('usage: :ix <command> [json]   e.g.  :ix vacancies {"items": 3}', severity="warning")
        return
    if not valid_name(command):
        app.notify(f"ix: {command!r} is not a handler script name: use {NAME_RULE}", severity="warning")
        return
    try:
        json.loads(raw)
    except ValueError as exc:
        app.notify(f"ix {command}: the payload is not JSON: {exc}", severity="error", timeout=8)
        return
    handler = handler_of(command)
    if not app.guard(f"ix {command}", capability=Capability.ENQUEUE):
        return
    try:
        job = await app.client.enqueue(handler, raw.encode(), source="pulse-tui ix")
    except ClientError as exc:
        if not is_unknown_handler(exc):
            app.report(exc, f"ix {command}")
            return
        if not app.client.can(Capability.SCRIPTS):
            app.notify(
                f"handler {handler} not found, and this endpoint has no handler scripts to create it",
                severity="error",
                timeout=8,
            )
            return
        ask_create(app, command, raw)
        return
    app.notify(f"ix {command}: enqueued job {job.id} ({handler})", timeout=10)


def ask_create(app: PulseApp, command: str, payload: str) -> None:
    handler = handler_of(command)

    async def create() -> None:
        screen = await _editor(app)
        if screen is not None:
            screen.open_new(command, ix_payload=payload)

    def answer(yes: bool | None) -> None:
        if yes:
            app.run_worker(create(), group="command", exit_on_error=False)
        else:
            app.notify(f"ix {command}: nothing enqueued")

    app.push_screen(
        ConfirmScreen(
            f"ix {command}",
            f"[b]Handler {handler} not found. Create it?[/b]\n\n"
            f"The handler editor opens with a template for {command}; after you save it (ctrl+s) "
            f"`ix {command}` runs with your payload.",
            yes="Create",
        ),
        answer,
    )


# ---------------------------------------------------------------------- the command palette

# Widget movement bindings stay out of the palette (the arrows are no actions to look up).
_PALETTE_SKIP = ("table.", "list.", "cmdline.")


class PulseCommands(Provider):
    """Command palette: the current screen's actions and the app's (each once, with its key,
    ours only — no widget internals), then the `:` commands."""

    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        commands = console_of(app).commands
        screen = self.screen
        out: list[tuple[str, str, Callable[[], object]]] = []
        seen: dict[str, int] = {}
        # the screen's own actions first, the app's (quit, help, pause…) after
        bindings = sorted(screen.active_bindings.items(), key=lambda kv: kv[1].node is app)
        for key, active in bindings:
            b = active.binding
            if not b.description or not b.id or b.id.startswith(_PALETTE_SKIP) or not active.enabled:
                continue
            if b.action == "command_palette":
                continue
            shown = app.get_key_display(Binding(key, b.action, b.description))
            if b.description in seen:  # another key for the same action: one entry listing both
                i = seen[b.description]
                label, help_text, cb = out[i]
                out[i] = (label[:-1] + f", {shown})", help_text, cb)
                continue
            seen[b.description] = len(out)
            label = f"{b.description}  ({shown})"
            out.append((label, b.tooltip or b.description, partial(app.run_action, b.action, active.node)))
        for cmd in commands:
            if cmd.name in ("help", "quit"):
                continue  # already listed as actions with their keys
            out.append((f":{cmd.name}", cmd.help, partial(commands.run, cmd.name)))
        out.append(("Change theme", "Pick a colour theme", app.action_change_theme))
        return out

    async def discover(self) -> Hits:
        for label, help_text, cb in self._entries():
            yield DiscoveryHit(label, cb, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, help_text, cb in self._entries():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), cb, help=help_text)
