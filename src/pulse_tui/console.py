"""What screens and widgets may use from the app: the console's contract.

``PulseApp`` owns the connection, the clock and the `:` commands; screens and widgets reach them
through :func:`console_of` (typed :class:`PulseConsole`) rather than ``self.app.client`` with a
``type: ignore`` or ``getattr(self.app, …)``. What is not listed here is Textual's own ``App`` API
(``notify``, ``push_screen``, ``switch_mode``…), which ``self.app`` already types.

A widget can also sit in a plain Textual app (the table tests mount the job table alone):
:func:`find_console` returns ``None`` there and the widget falls back to wall time and no client.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import tzinfo
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable
from weakref import WeakKeyDictionary

if TYPE_CHECKING:
    from pulse_tui.client import PulseClient
    from pulse_tui.commands import CommandTable
    from pulse_tui.vocab import Capability


@runtime_checkable
class PulseConsole(Protocol):
    """The app as screens and widgets see it. The state attributes are reactives on the app:
    widgets ``watch`` them (the status bar does) instead of being pushed to."""

    client: PulseClient
    address: str  # the endpoint as the user gave it
    live: bool  # False: no event stream or polling (snapshot tests and scripted runs)
    tz: tzinfo | None  # the zone times are shown in (None: local)
    commands: CommandTable  # the `:` commands

    # reactive state
    conn_state: str  # "connecting", "connected", "reconnecting", "auth failed"
    retry_in: int  # seconds to the next reconnect probe (0: none scheduled)
    paused: bool  # live updates paused (`p`)
    counts_markup: str  # the status bar's job counts (Rich markup)
    endpoint_mode: str  # set when a probe answers: operator, compat or plugin
    store_condition: str  # the server's store_condition ("" = the store can write)
    budget_markup: str  # the spend against the budget nearest its limit (Rich markup; "" = none)

    @property
    def read_only(self) -> bool:
        """--read-only, or the server granted a read-only token."""
        ...

    @property
    def mode_name(self) -> str:
        """The endpoint's mode as the client knows it ("" before the first probe)."""
        ...

    def now(self) -> float:
        """The console's clock (frozen in snapshot tests)."""
        ...

    def guard(self, what: str, *, mutating: bool = True, capability: Capability | None = None) -> bool:
        """True when ``what`` may run now; otherwise say why and what to do."""
        ...

    def report(self, exc: BaseException, what: str = "") -> None:
        """Show a failed call; an unreachable server starts the reconnect loop instead."""
        ...

    def copy_id(self, job_id: str) -> None: ...

    async def push_view(self) -> None:
        """Tell the live stream now which jobs the screens show (see PulseApp.push_view)."""
        ...

    def view_widening(self) -> AbstractAsyncContextManager[None]:
        """Around a page fetch of a list the live stream follows (see PulseApp.view_widening)."""
        ...

    def check_size(self) -> None:
        """Re-check the terminal size (the too-small notice, the short layout)."""
        ...

    def reconnect_now(self) -> None: ...

    def command_names(self) -> list[str]:
        """The `:` command names, sorted (the command line completes them)."""
        ...


_seen: WeakKeyDictionary[object, bool] = WeakKeyDictionary()


def find_console(app: object) -> PulseConsole | None:
    """``app`` as the console's contract, or None for a plain Textual app."""
    try:
        ok = _seen[app]
    except KeyError:
        ok = _seen[app] = isinstance(app, PulseConsole)  # checks every member: once per app
    except TypeError:  # not weak-referenceable: not an app
        return None
    return cast(PulseConsole, app) if ok else None  # isinstance said so (cached)


def console_of(app: object) -> PulseConsole:
    """``app`` as the console's contract (screens run in the console app only)."""
    console = find_console(app)
    if console is None:
        raise TypeError(f"{type(app).__name__} is not a Pulse console: it lacks what PulseConsole lists")
    return console
