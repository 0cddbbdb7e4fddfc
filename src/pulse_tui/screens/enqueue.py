"""Enqueue modal: handler with completion, JSON payload with live validation, timeout, attempts, priority."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static, TextArea

from pulse_tui.client import ClientError
from pulse_tui.console import console_of
from pulse_tui.protocol import operator_pb2
from pulse_tui.vocab import Capability, EndpointMode
from pulse_tui.widgets import fmt

MAX_MATCHES = 6


class EnqueueScreen(ModalScreen[operator_pb2.Job | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Enqueue", id="enqueue.submit", priority=True),
        Binding("escape", "close", "Cancel", id="enqueue.close"),
    ]

    def __init__(self, default_handler: str = "", payload: str = "{}") -> None:
        super().__init__()
        self.default_handler = default_handler
        self.default_payload = payload
        self.names: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="enqueue-dialog", classes="dialog"):
            yield Static("Enqueue a job", classes="dialog-title")
            yield Label("Handler")
            yield Input(
                value=self.default_handler,
                placeholder="e.g. demo.sleep or demo/demo.sleep",
                id="enqueue-handler",
            )
            yield Static("", id="enqueue-matches", classes="hint")
            yield Label("Payload (JSON)")
            # No language="json": tree-sitter-json 0.24.8 with tree-sitter 0.26 segfaults in TextArea
            # (reproduced in this environment); validation below is live instead.
            yield TextArea(
                self.default_payload,
                id="enqueue-payload",
                soft_wrap=True,
                tab_behavior="focus",
                show_line_numbers=True,
            )
            yield Static("", id="enqueue-validation", classes="hint")
            with Horizontal(id="enqueue-numbers"):
                with Vertical():
                    yield Label("Timeout s")
                    yield Input("", placeholder="default", type="integer", id="enqueue-timeout")
                with Vertical():
                    yield Label("Max attempts")
                    yield Input("", placeholder="3", type="integer", id="enqueue-attempts")
                with Vertical():
                    yield Label("Priority")
                    yield Input("0", type="integer", id="enqueue-priority")
            yield Static(
                "Timeout, max attempts and priority are not available in compat mode (QueueService has"
                " no such fields): the server's defaults apply.",
                id="enqueue-compat",
                classes="hint",
                markup=False,
            )
            yield Static("", id="enqueue-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Enqueue (ctrl+s)", id="enqueue-ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="enqueue-cancel", compact=True)

    def on_mount(self) -> None:
        compat = console_of(self.app).mode_name == EndpointMode.COMPAT
        self.query_one("#enqueue-numbers").display = not compat  # QueueService would drop them
        self.query_one("#enqueue-compat").display = compat
        self.query_one("#enqueue-payload", TextArea).cursor_blink = False
        # now, not deferred: the keys typed right after `e` are read next (PulseScreen.open_form)
        self.set_focus(self.query_one("#enqueue-payload" if self.default_handler else "#enqueue-handler"))
        self._validate()
        self.load_names()

    @work(exclusive=True, group="enqueue-names", exit_on_error=False)
    async def load_names(self) -> None:
        client = console_of(self.app).client
        if not client.can(Capability.HANDLERS):
            self.query_one("#enqueue-matches", Static).update(
                Text("handler list unavailable on this endpoint; type the name", style="dim italic")
            )
            return
        try:
            handlers = await client.list_handlers()
        except ClientError as exc:
            self.query_one("#enqueue-matches", Static).update(Text(exc.message, style=fmt.C("#e0af68")))
            return
        names: list[str] = []
        for h in handlers:
            names.append(h.name)
            names.extend(h.qualified)
        self.names = sorted(set(names))
        self.query_one("#enqueue-handler", Input).suggester = SuggestFromList(
            self.names, case_sensitive=False
        )
        self._show_matches(self.query_one("#enqueue-handler", Input).value)

    def _show_matches(self, value: str) -> None:
        out = self.query_one("#enqueue-matches", Static)
        if not self.names:
            return
        v = value.strip().lower()
        if v in (n.lower() for n in self.names):
            out.update(Text("✔ known handler", style=fmt.C("#9ece6a")))
            return
        matches = [n for n in self.names if v in n.lower()] if v else self.names
        if not matches:
            out.update(Text(f"no announced handler matches {value!r}", style=fmt.C("#e0af68")))
            return
        more = f" (+{len(matches) - MAX_MATCHES})" if len(matches) > MAX_MATCHES else ""
        out.update(Text("→ " + "  ".join(matches[:MAX_MATCHES]) + more, style="dim"))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._error("")  # an edit answers the last error: do not keep showing it
        if event.input.id == "enqueue-handler":
            self._show_matches(event.value)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._error("")
        self._validate()

    def _validate(self) -> bool:
        raw = self.query_one("#enqueue-payload", TextArea).text
        out = self.query_one("#enqueue-validation", Static)
        if not raw.strip():
            out.update(Text("✔ empty payload is sent as {}", style=fmt.C("#9ece6a")))
            return True
        try:
            json.loads(raw)
        except json.JSONDecodeError as exc:
            out.update(Text(f"✘ line {exc.lineno} col {exc.colno}: {exc.msg}", style=fmt.C("#f7768e")))
            return False
        out.update(Text(f"✔ valid JSON ({len(raw.encode())} bytes)", style=fmt.C("#9ece6a")))
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "enqueue-ok":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    def _int(self, widget_id: str, what: str) -> int | None:
        raw = self.query_one(widget_id, Input).value.strip()
        if not raw:
            return 0
        try:
            value = int(raw)
        except ValueError:
            self._error(f"{what} must be a whole number")
            return None
        if value < 0 and what != "priority":
            self._error(f"{what} cannot be negative")
            return None
        bound = 2**63 - 1 if what == "timeout" else 2**31 - 1  # the protocol's int64 / int32
        if not -bound - 1 <= value <= bound:  # (beyond, the form did nothing: a protobuf ValueError)
            self._error(f"{what} {value} is out of range")
            return None
        return value

    def _error(self, message: str) -> None:
        self.query_one("#enqueue-error", Static).update(Text(message, style=fmt.C("bold #f7768e")))

    @work(exclusive=True, group="enqueue-submit", exit_on_error=False)
    async def action_submit(self) -> None:
        app = console_of(self.app)
        handler = self.query_one("#enqueue-handler", Input).value.strip()
        if not handler:
            self._error("choose a handler")
            self.query_one("#enqueue-handler", Input).focus()
            return
        if not self._validate():
            self._error("fix the payload: it must be JSON")
            return
        timeout = self._int("#enqueue-timeout", "timeout")
        attempts = self._int("#enqueue-attempts", "max attempts")
        priority = self._int("#enqueue-priority", "priority")
        if timeout is None or attempts is None or priority is None:
            return
        raw = self.query_one("#enqueue-payload", TextArea).text.strip() or "{}"
        if app.read_only:
            self._error("read-only: enqueue refused")
            return
        try:
            job = await app.client.enqueue(
                handler, raw.encode(), max_attempts=attempts, timeout_secs=timeout, priority=priority
            )
        except ClientError as exc:
            message = exc.message
            if "unknown handler" in message.lower():
                # the console's own list, not the CLI's
                message = message.split("; list them with", 1)[0] + "; see :handlers for every name"
            self._error(message)
            return
        self.app.notify(f"enqueued {job.id} ({handler})")
        self.dismiss(job)
