"""The Pulse operator console (Textual app).

``PulseApp`` owns the connection: it probes the endpoint, reconnects with backoff, streams job events
(or polls in compat mode), coalesces them to at most 10 repaints a second and hands the batches to
the screens. Screens live in :mod:`pulse_tui.screens`, widgets in :mod:`pulse_tui.widgets`; what
they may use of the app is :class:`pulse_tui.console.PulseConsole`; the `:` commands and the palette
are in :mod:`pulse_tui.commands`. Every key is a ``Binding`` with an id so users can remap it
(``[tui] keys`` in config → ``keymap``).
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import tzinfo
from pathlib import Path
from typing import Any, ClassVar

import grpc
from textual import work
from textual.actions import SkipAction
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Input, TextArea
from textual.worker import Worker, WorkerState

from pulse_tui.client import COMPAT, OPERATOR, PLUGIN, STATUSES, ClientError, PulseClient
from pulse_tui.commands import CommandTable, PulseCommands, command_table
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.editor import EditorScreen
from pulse_tui.screens.handlers import HandlersScreen
from pulse_tui.screens.help import HelpScreen
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.screens.plugins import PluginsScreen
from pulse_tui.screens.schedules import SchedulesScreen
from pulse_tui.screens.stats import StatsScreen
from pulse_tui.vocab import Capability
from pulse_tui.widgets import fmt, terminal_guard
from pulse_tui.widgets.command_line import CommandLine
from pulse_tui.widgets.too_small import MIN_HEIGHT, MIN_WIDTH

FLUSH_INTERVAL = 0.1  # ≤ 10 repaints per second from live updates
COUNTS_INTERVAL = 1.0
STORE_CHECK_INTERVAL = 5.0  # how often the console asks the server whether its store can write
POLL_INTERVAL = 2.0  # compat mode
OTHERS_INTERVAL = 1.0  # least time between two refetches for changes to jobs no screen shows
NEAR_INTERVAL = 0.2  # the same when some may enter a list (new jobs on top): they show this fast
VIEW_LIMIT = 10_000  # ids one view stream shows at most (the server's limit)
MAX_PENDING = 20_000  # beyond this while paused, drop the batch and resync on resume
# Reconnect backoff: doubling from BACKOFF_START, jittered (each wait is 50-100 % of the step),
# capped at BACKOFF_RECENT_CAP while the server answered in the last RECENTLY_SEEN seconds (a
# restart comes back in seconds) and at BACKOFF_CAP after that.
BACKOFF_START, BACKOFF_RECENT_CAP, BACKOFF_CAP = 0.5, 5.0, 30.0
RECENTLY_SEEN = 120.0
DEFAULT_THEME = "textual-dark"
RECONNECT_PROBE_WAIT = 1.5  # a reconnect probe waits this long for the channel to come up


def backoff_delays(recent: Callable[[], bool], rng: random.Random | None = None) -> Iterator[float]:
    """The reconnect waits: capped exponential steps with jitter."""
    rng = rng or random.Random()
    step = BACKOFF_START
    while True:
        cap = BACKOFF_RECENT_CAP if recent() else BACKOFF_CAP
        step = min(step, cap)
        yield step * rng.uniform(0.5, 1.0)
        step = min(step * 2, cap)


class Connected(Message):
    """The endpoint answered the probe (again)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode


def binding_ids() -> dict[str, str]:
    """Every remappable binding id of the console → its default keys (for `[tui.keys]`)."""
    from textual.dom import DOMNode

    # screens and widgets register their classes by being imported: load them all
    from pulse_tui.screens import confirm, enqueue, job_detail  # noqa: F401
    from pulse_tui.widgets import data_table, job_table  # noqa: F401

    out: dict[str, str] = {}
    todo: list[type] = [DOMNode]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not cls.__module__.startswith("pulse_tui."):
            continue
        for b in cls.__dict__.get("BINDINGS", ()):
            if isinstance(b, Binding) and b.id:
                out.setdefault(b.id, b.key)
    return dict(sorted(out.items()))


_startup_frozen = False  # gc.freeze() ran in this process (PulseApp.on_ready)


class PulseApp(App[None]):
    """Operator console for a Pulse server (or a QueueService / bare plugin endpoint)."""

    CSS_PATH = "app.tcss"
    TITLE = "pulse"
    COMMANDS = {PulseCommands}  # ours only: Textual's system commands duplicated and led the list
    MODES = {
        "jobs": JobsScreen,
        "plugins": PluginsScreen,
        "handlers": HandlersScreen,
        "schedules": SchedulesScreen,
        "editor": EditorScreen,
        "stats": StatsScreen,
    }
    DEFAULT_MODE = "jobs"

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: run before the keys typed after it are handed out, so they land in the line
        Binding("colon", "command_line", "Command", show=False, priority=True, id="app.command"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("p", "toggle_pause", "Pause live", show=False, id="app.pause"),
        Binding("q", "back", "Back", id="app.back"),
        Binding("escape", "back(False)", "Back", show=False, id="app.escape"),
        Binding("Q", "request_quit", "Quit", show=False, id="app.quit_now"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="app.palette"),
        Binding("ctrl+r", "reconnect", "Reconnect now", show=False, id="app.reconnect"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="app.quit"),
    ]

    conn_state: reactive[str] = reactive("connecting")
    retry_in: reactive[int] = reactive(0)
    paused: reactive[bool] = reactive(False)
    counts_markup: reactive[str] = reactive("")
    endpoint_mode: reactive[str] = reactive("")
    store_condition: reactive[str] = reactive("")  # ServerInfo.store_condition ("" = healthy)
    budget_markup: reactive[str] = reactive("")  # ServerInfo.budgets, for the status bar

    def __init__(
        self,
        address: str,
        token: str = "",
        read_only: bool = False,
        keymap: Mapping[str, str] | None = None,
        *,
        client: PulseClient | None = None,
        tls: grpc.ChannelCredentials | bool | None = None,
        now: Callable[[], float] | None = None,
        tz: tzinfo | None = None,
        live: bool = True,
        embedded: bool = False,
        theme: str = "",
        theme_file: Path | None = None,
        notice: str = "",
    ) -> None:
        terminal_guard.guard()  # what a job or plugin says cannot drive the terminal
        super().__init__()
        self._notice = notice  # said once the console is up (e.g. it attached to a kept server)
        # --theme / [tui] theme win; else the one last picked from the palette (theme_file)
        self._wanted_theme = theme
        self._theme_file = theme_file
        # this console started the server it talks to (`pulse-tui` with nothing answering):
        # quitting stops it unless the user chooses to keep it (then ``keep_server`` is True)
        self.embedded = embedded
        self.keep_server = False
        self._quitting = False
        self._last_seen = 0.0  # monotonic time the server last answered (probe or event)
        self.retry_at = 0.0  # monotonic deadline of the next probe: the one source of the countdown
        self.backoff_waits: list[float] = []  # waits chosen since the connection was lost
        self.address = address
        self.client = client or PulseClient(address, token, tls=tls)
        self._read_only_flag = read_only
        self._clock = now
        self.tz = tz
        self.live = live
        self._keymap_overrides = dict(keymap or {})  # binding id -> key ([tui] keys in the config)
        self._pending: dict[str, operator_pb2.Job] = {}
        self.budgets: list[operator_pb2.Budget] = []  # the last ServerInfo's (see _note_budgets)
        self._need_resync = False
        # the live stream is a view (WatchJobsRequest.view): the server sends in full only the
        # jobs the screens show and counts the others; `_others` says some changed since the
        # screens last refetched (`others_changed`, at most once per OTHERS_INTERVAL)
        self._view_token = ""
        self._view_sent: tuple[frozenset[str], int] | None = None  # (ids, from_seq) the server has
        self._view_lock = asyncio.Lock()  # one view update at a time, in order
        self._widening = 0  # page fetches in flight: the server counts every change as near
        self._others = False
        self._others_near = False
        self._others_at = 0.0
        # counts the view stream carries after each change (no CountJobs while they follow)
        self._stream_counts: operator_pb2.CountJobsResponse | None = None
        self._counts_owed = False  # changes arrived that no counts have followed yet
        self._counts_dirty = True
        self._counts: operator_pb2.CountJobsResponse | None = None  # the last answer, for the status bar
        self._connected_once = asyncio.Event()
        self.commands: CommandTable = command_table(self)  # the `:` commands

    # ------------------------------------------------------------------ basics

    def now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    @property
    def read_only(self) -> bool:
        return self._read_only_flag or self.client.read_only

    @property
    def mode_name(self) -> str:
        return self.client.mode or ""

    def on_mount(self) -> None:
        self._start_theme()
        if self._keymap_overrides:
            self.set_keymap(self._keymap_overrides)
            self.check_keymap()
        self.set_interval(FLUSH_INTERVAL, self._flush_updates)
        self.set_interval(COUNTS_INTERVAL, self._maybe_refresh_counts)
        self.set_interval(STORE_CHECK_INTERVAL, self._maybe_check_store)
        self.check_size()
        if self._notice:
            self.notify(self._notice, timeout=10)
        self.connect()

    def on_ready(self) -> None:
        # what was built to start (modules, styles, the first screen) lives as long as the app:
        # keep it out of the collector's full passes, which walked all of it on every one and
        # took 40-380 ms at a time (a loaded machine), landing on key presses. Once a process.
        global _startup_frozen
        if not _startup_frozen:
            _startup_frozen = True
            gc.freeze()

    def _start_theme(self) -> None:
        wanted = self._wanted_theme
        if not wanted and self._theme_file is not None:
            try:
                wanted = self._theme_file.read_text(encoding="utf-8").strip()
            except OSError:
                wanted = ""
        if wanted and wanted not in self.available_themes:
            self.notify(
                f"unknown theme {wanted!r}; one of {', '.join(sorted(self.available_themes))}",
                severity="error",
                timeout=20,
            )
        elif wanted:
            self.theme = wanted
        self._last_theme = self.theme
        self._apply_theme(persist=False)
        self.theme_changed_signal.subscribe(self, lambda _theme: self._apply_theme(persist=True))

    def _apply_theme(self, *, persist: bool) -> None:
        """Status and role colours follow the theme (fmt.C); the built-in dark look keeps the
        colours it was drawn with. A theme picked in the palette is remembered in the data dir."""
        if self.theme == DEFAULT_THEME:
            fmt.apply_theme({})
        else:
            fmt.apply_theme(self.get_css_variables())
        # the status bar's counts and budgets are markup built with the colours: rebuilt now, from
        # the last answers (waiting for the next count left the old colours up to a count period,
        # or for good while live updates are paused)
        if self._counts is not None:
            self.counts_markup = self._counts_text(self._counts)
        self.budget_markup = fmt.budget_markup(self.budgets)
        for screen in self._screens_alive():
            screen.refresh(repaint=True)
            for widget in screen.query("*"):
                widget.refresh()
        if persist and self._theme_file is not None and self.theme != self._last_theme:
            self._last_theme = self.theme
            try:
                self._theme_file.write_text(self.theme + "\n", encoding="utf-8")
            except OSError:
                pass  # remembering the choice is a convenience

    def _screens_alive(self) -> list[Screen[Any]]:
        out: list[Screen[Any]] = []
        for stack in self._screen_stacks.values():
            out.extend(s for s in stack if s.is_mounted)
        return out

    def check_keymap(self) -> list[str]:
        """Say which `[tui.keys]` ids are unknown (they would silently do nothing)."""
        known = binding_ids()
        unknown = sorted(k for k in self._keymap_overrides if k not in known)
        if unknown:
            self.notify(
                f"[tui.keys]: unknown binding id(s) {', '.join(unknown)} — ignored. Valid ids: "
                + ", ".join(known),
                title="config",
                severity="error",
                timeout=30,
                markup=False,
            )
        return unknown

    def on_resize(self) -> None:
        self.check_size()

    def check_size(self) -> None:
        small = self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        self.set_class(self.size.height < 30, "-short")

    # ------------------------------------------------------------------ commands (`:`)

    def command_names(self) -> list[str]:
        return sorted(self.commands.names())

    async def run_command_line(self, line: str) -> None:
        await self.commands.run(line)

    def on_command_line_submitted(self, event: CommandLine.Submitted) -> None:
        self.run_worker(self.run_command_line(event.line), group="command", exit_on_error=False)

    def action_command_line(self) -> None:
        if isinstance(self.focused, Input | TextArea):
            raise SkipAction()  # a `:` typed into a text field (the filter, a payload, a script)
        for cl in self.screen.query(CommandLine):
            cl.open()
            return
        raise SkipAction()  # a dialog on top: the key is its own

    def goto(self, mode: str) -> None:
        """Switch to a screen (on a compat or plugin endpoint it explains what that endpoint lacks)."""
        self.switch_mode(mode)

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.notify("live updates paused (p resumes)" if self.paused else "live updates resumed")
        if not self.paused:
            self._flush_updates()

    async def action_back(self, quit_at_root: bool = True) -> None:
        """`q` / `escape`: go back. At the jobs root both first undo what is open (the filter
        line, marks, the filter); only `q` with nothing left to undo leaves the app (asking first
        when that would stop an embedded server with running jobs)."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.current_mode != "jobs":
            self.switch_mode("jobs")
        else:
            undone = self.screen.escape() if isinstance(self.screen, JobsScreen) else False
            if quit_at_root and not undone:
                self.request_quit()

    async def action_quit(self) -> None:
        self.request_quit()

    def action_request_quit(self) -> None:
        self.request_quit()

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def request_quit(self) -> None:
        """Leave the console. An embedded server with running jobs asks first: stop it (the jobs
        are re-queued), keep it running, or stay. A second request while asking quits."""
        from pulse_tui.screens.confirm import QuitScreen

        if self._quitting or isinstance(self.screen, QuitScreen):
            self.exit()
            return
        running, capped = await self._running_jobs()
        if not running:
            self.exit()
            return
        self._quitting = True
        try:
            choice = await self.push_screen_wait(QuitScreen(self.address, running, capped))
        finally:
            self._quitting = False
        if choice == "keep":
            self.keep_server = True
            self.exit()
        elif choice == "stop":
            self.exit()

    async def _running_jobs(self) -> tuple[int, bool]:
        """Running jobs on an embedded server (0 for a server this console did not start)."""
        if not self.embedded or self.conn_state != "connected" or not self.client.can(Capability.COUNTS):
            return 0, False
        try:
            resp = await asyncio.wait_for(
                self.client.count_jobs(operator_pb2.JobFilter(statuses=["running"]), cap=10_000), 3.0
            )
        except (ClientError, TimeoutError):
            return 0, False
        return int(resp.by_status.get("running", 0)), bool(resp.capped)

    def copy_id(self, job_id: str) -> None:
        self.copy_to_clipboard(job_id)
        self.notify(f"copied {job_id} (OSC 52)")

    def guard(self, what: str, *, mutating: bool = True, capability: Capability | None = None) -> bool:
        """True when ``what`` may run now; otherwise say why and what to do."""
        if mutating and self.read_only:
            self.notify(
                f"read-only: {what} refused (started with --read-only or a read-only token)",
                severity="warning",
            )
            return False
        if self.conn_state != "connected":
            self.notify(
                f"not connected to {self.address}; {what} is disabled until the connection is back"
                " (the status bar counts down to the next try; ctrl+r or :reconnect tries now)",
                severity="warning",
            )
            return False
        if capability and not self.client.can(capability):
            self.notify(f"{what} is not available on a {self.mode_name} endpoint", severity="warning")
            return False
        return True

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every message of the console is plain text, whoever sends it (screens pass markup=True
        by default): `[budgets]`, `:ix <command> [json]` or a server's `[word]` would otherwise be
        read as a style tag and vanish."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def report(self, exc: BaseException, what: str = "") -> None:
        """Show a failed call; an unreachable server starts the reconnect loop instead."""
        if isinstance(exc, ClientError):
            if exc.unavailable:
                self.lost(exc)
                return
            prefix = f"{what}: " if what else ""
            self.notify(f"{prefix}{exc.message}", severity="error", timeout=8)
            if exc.code in ("RESOURCE_EXHAUSTED", "DATA_LOSS"):
                self._maybe_check_store()  # a full disk or a damaged store: show it in the status bar
        else:
            self.notify(f"{what}: {exc}" if what else str(exc), severity="error", timeout=8)

    # ------------------------------------------------------------------ connection

    def lost(self, exc: ClientError) -> None:
        if self.conn_state == "connected":
            self._last_seen = time.monotonic()  # connected until now: a restart is likely
            self.notify(exc.message, severity="warning", timeout=6)
            self._for_screens(lambda s: s.connection_changed(False))
        if self.conn_state not in ("reconnecting", "connecting"):
            self.conn_state = "reconnecting"
            self.connect()

    def action_reconnect(self) -> None:
        self.reconnect_now()

    def reconnect_now(self) -> None:
        """ctrl+r / `:reconnect`: probe now instead of waiting out the backoff (also re-opens the
        event stream when connected)."""
        if self.conn_state != "connected":
            self.notify(f"reconnecting to {self.address} now")
        self.conn_state = "reconnecting"
        self.connect()

    def _recently_seen(self) -> bool:
        return bool(self._last_seen) and time.monotonic() - self._last_seen < RECENTLY_SEEN

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def connect(self) -> None:
        first = not self._connected_once.is_set()
        delays = backoff_delays(self._recently_seen)
        self.backoff_waits = []
        while True:
            self.conn_state = "connecting" if first else "reconnecting"
            self.retry_in = 0
            self.retry_at = 0.0
            try:
                mode = await (self.client.probe() if first else self.client.probe(wait=RECONNECT_PROBE_WAIT))
                break
            except ClientError as exc:
                if exc.code == "UNAUTHENTICATED":
                    self.conn_state = "auth failed"
                    self.notify(exc.message, severity="error", timeout=30)
                    return
                if first:
                    self.notify(exc.message, severity="warning", timeout=6)
                    first = False
                self.conn_state = "reconnecting"
                wait = next(delays)
                self.backoff_waits.append(wait)
                self.retry_at = time.monotonic() + wait
                while (left := self.retry_at - time.monotonic()) > 0:
                    self.retry_in = math.ceil(left)
                    await asyncio.sleep(min(left, left - math.floor(left) or 1.0))
        self._last_seen = time.monotonic()
        self.retry_in = 0
        self.retry_at = 0.0
        self.conn_state = "connected"
        self.endpoint_mode = mode
        info = self.client.info
        self.store_condition = info.store_condition if info is not None and mode == OPERATOR else ""
        self._note_budgets(info if mode == OPERATOR else None)
        self._connected_once.set()
        self._counts_dirty = True
        self._for_screens(lambda s: s.connection_changed(True))
        self._for_screens(lambda s: s.resync())
        if mode == OPERATOR and self.live:
            self.watch_events()
        elif mode == COMPAT and self.live:
            self.poll_jobs()
        self._maybe_refresh_counts()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected_once.wait(), timeout)

    @work(exclusive=True, group="watch", exit_on_error=False)
    async def watch_events(self) -> None:
        self._view_token = ""
        shown = self._shown_view()
        try:
            async for ev in self.client.watch_jobs(view=shown[0], from_seq=shown[1]):
                self._last_seen = time.monotonic()
                if ev.kind == "heartbeat" and ev.view_token:
                    self._view_token, self._view_sent = ev.view_token, shown
                elif ev.kind == "others":
                    self._others = True
                    self._others_near = self._others_near or ev.others_from_seq > 0
                    self._counts_owed = True
                elif ev.kind == "counts":
                    self._stream_counts, self._counts_owed = ev.counts, False
                elif ev.kind == "upsert":
                    self._counts_owed = True
                    if len(self._pending) >= MAX_PENDING:
                        self._pending.clear()
                        self._need_resync = True
                    self._pending[ev.job.id] = ev.job
                elif ev.kind == "resync":
                    self._pending.clear()
                    self._need_resync = True
        except ClientError as exc:
            self._view_token = ""
            self._last_seen = time.monotonic()  # it answered until now
            self.lost(exc)

    @work(exclusive=True, group="watch", exit_on_error=False)
    async def poll_jobs(self) -> None:
        while self.conn_state == "connected":
            await asyncio.sleep(POLL_INTERVAL)
            if not self.paused:
                self._need_resync = True
                self._counts_dirty = True

    def _flush_updates(self) -> None:
        if self.paused:
            return
        if self._need_resync:
            self._need_resync = False
            self._pending.clear()
            self._others = self._others_near = False
            self._counts_dirty = True
            self._for_screens(lambda s: s.resync())
            return
        self._follow_view()
        if self._pending:
            batch = list(self._pending.values())
            self._pending.clear()
            self._counts_dirty = True
            self._for_screens(lambda s: s.jobs_changed(batch))
        pace = NEAR_INTERVAL if self._others_near else OTHERS_INTERVAL
        if self._others and time.monotonic() - self._others_at >= pace:
            near = self._others_near
            self._others = self._others_near = False
            self._others_at = time.monotonic()
            self._counts_dirty = True
            self._for_screens(lambda s: s.others_changed(near))
        counts, self._stream_counts = self._stream_counts, None
        if counts is not None and not self._counts_owed:  # taken after every change seen so far
            self._counts_dirty = False
            self._show_counts(counts)
            self._for_screens(lambda s: s.counts_arrived(counts))

    def _shown_view(self) -> tuple[frozenset[str], int]:
        """The ids the screens show and the lowest seq their newest-first list holds (0 while a
        page is on its way or when a screen says any change matters)."""
        ids: set[str] = set()
        froms: list[int | None] = []

        def note(s: PulseScreen) -> None:
            ids.update(s.shown_job_ids())
            froms.append(s.shown_from_seq())

        self._for_screens(note)
        if len(ids) > VIEW_LIMIT:  # the rest count as others: their changes refetch the screens
            ids = set(sorted(ids)[:VIEW_LIMIT])
        lows = [f for f in froms if f is not None]
        return frozenset(ids), 0 if self._widening or not lows else min(lows)

    def _follow_view(self) -> None:
        """Tell the server when the screens show other jobs (a page loaded, a scroll, a detail)."""
        if self._view_token and self._shown_view() != self._view_sent:
            self.send_view()

    @work(exclusive=True, group="watch-view", exit_on_error=False)
    async def send_view(self) -> None:
        await self.push_view()

    async def push_view(self) -> None:
        """Send the view now if the screens show other jobs than the server follows."""
        async with self._view_lock:
            token, view = self._view_token, self._shown_view()
            if not token or view == self._view_sent:
                return
            followed = self._view_sent[0] if self._view_sent is not None else frozenset()
            self._view_sent = None  # unknown until the server answers
            try:
                await self.client.set_watch_view(token, view[0], view[1])
            except ClientError:
                return  # tried again at the next flush (a stream that ended: the reconnect)
            if token == self._view_token:
                self._view_sent = view
                added = view[0] - followed
                if added:  # their changes until now came as others: the screens read them once
                    self._for_screens(lambda s: s.view_followed(added))

    @asynccontextmanager
    async def view_widening(self) -> AsyncIterator[None]:
        """Around a page fetch: the server counts every change as near until the rows fetched
        are held (and followed by the next view update), so none changed meanwhile is missed."""
        self._widening += 1
        try:
            await self.push_view()
            yield
        finally:
            self._widening -= 1

    def _for_screens(self, fn: Callable[[PulseScreen], None]) -> None:
        seen: set[int] = set()
        stacks: Iterable[list[Screen[Any]]] = self._screen_stacks.values()
        for stack in stacks:
            for screen in stack:
                if isinstance(screen, PulseScreen) and id(screen) not in seen and screen.is_mounted:
                    seen.add(id(screen))
                    try:
                        fn(screen)
                    except NoMatches:
                        # a screen being torn down (the app exiting) loses its widgets before it
                        # stops counting as mounted; nothing is left there to update
                        continue

    def _maybe_refresh_counts(self) -> None:
        if self._counts_dirty and self.conn_state == "connected" and not self.paused:
            self._counts_dirty = False
            self.refresh_counts()

    def _maybe_check_store(self) -> None:
        if self.conn_state == "connected" and self.endpoint_mode == OPERATOR:
            self.check_store()

    @work(exclusive=True, group="store", exit_on_error=False)
    async def check_store(self) -> None:
        """Ask the server whether its job store can write (a full disk, a damaged file)."""
        try:
            info = await self.client.server_info()
        except ClientError:
            return  # unreachable servers are noticed (and reported) by the watch and the counts
        self.store_condition = info.store_condition
        self._note_budgets(info)

    def _note_budgets(self, info: operator_pb2.ServerInfo | None) -> None:
        self.budgets = list(info.budgets) if info is not None else []
        self.budget_markup = fmt.budget_markup(self.budgets)

    def show_budgets(self) -> None:
        """`:budgets`: every budget with its spend (from the last ServerInfo, every 5 s)."""
        if not self.budgets:
            self.notify("no spend budgets are set ([budgets] in the server's pulse.toml)")
            return
        lines = []
        for b in self.budgets:
            state = "REACHED: its jobs are held" if b.reached else f"{b.remaining:.2f} left"
            lines.append(f"{b.scope or 'every job'} {b.period}: {b.spent:.2f} of {b.limit:.2f} ({state})")
        self.notify("\n".join(lines), title="Spend budgets", timeout=10)

    @work(exclusive=True, group="counts", exit_on_error=False)
    async def refresh_counts(self) -> None:
        if not self.client.can(Capability.COUNTS):
            self.counts_markup = ""
            return
        try:
            resp = await self.client.count_jobs()
        except ClientError as exc:
            self.report(exc, "counting jobs")
            return
        self._show_counts(resp)

    def _show_counts(self, resp: operator_pb2.CountJobsResponse) -> None:
        self._counts = resp
        self.counts_markup = self._counts_text(resp)

    @staticmethod
    def _counts_text(resp: operator_pb2.CountJobsResponse) -> str:
        parts = []
        for status in STATUSES:
            n = resp.by_status.get(status, 0)
            if n or status in ("running", "queued", "failed"):
                style = fmt.STATUS_STYLES[status]
                parts.append(f"[{style}]{fmt.STATUS_ICONS[status]}[/] {fmt.count(n, resp.capped, resp.cap)}")
        return "  ".join(parts)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers run with exit_on_error=False: an unexpected failure is shown, never swallowed."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            err = event.worker.error
            if isinstance(err, ClientError):
                self.report(err)
            else:
                self.notify(
                    f"internal error in {event.worker.name}: {err!r} — please report it", severity="error"
                )

    async def on_unmount(self) -> None:
        await self.client.close()


__all__ = ["PulseApp", "Connected", "PulseCommands", "OPERATOR", "COMPAT", "PLUGIN"]
