"""Plugins screen: state, health, version, pid, uptime, restarts; handlers, output tail, config schema;
hot reload (added / removed / conflicting handlers) and enable / disable."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from pulse_tui.client import ClientError, PluginEndpointInfo, config_constraints
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.vocab import Capability, EndpointMode
from pulse_tui.widgets import fmt
from pulse_tui.widgets.data_table import PulseDataTable

STATE_STYLES = fmt.ThemedStyles(
    {
        "ready": "bold #9ece6a",
        "starting": "bold #7aa2f7",
        "unhealthy": "bold #e0af68",
        "backoff": "bold #e0af68",
        "crashed": "bold #f7768e",
        "unreachable": "bold #f7768e",
        "stopped": "#737aa2",
        "disabled": "#737aa2",
    }
)
REFRESH_SECS = 2.0


class PluginsScreen(PulseScreen):
    TITLE = "Plugins"
    MUTATING = frozenset({"reload", "toggle_enabled"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload", id="plugins.reload"),
        Binding("d", "toggle_enabled", "Enable/disable", id="plugins.toggle"),
        Binding("right,l", "tab(1)", "Next tab", show=False, id="plugins.next_tab"),
        Binding("left,h", "tab(-1)", "Prev tab", show=False, id="plugins.prev_tab"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="plugins.refresh"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoint_info: PluginEndpointInfo | None = (
            None  # a bare plugin endpoint's own metadata and health
        )
        self.plugins: list[operator_pb2.Plugin] = []
        self.selected: operator_pb2.Plugin | None = None
        self.last_reload: operator_pb2.ReloadPluginResponse | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("", id="plugins-note", classes="note")
        yield PulseDataTable(id="plugins-table", cursor_type="row", zebra_stripes=False)
        with TabbedContent(id="plugin-tabs"):
            with TabPane("Handlers", id="ptab-handlers"), VerticalScroll(classes="pane-scroll"):
                yield Static(id="plugin-handlers")
            with (
                TabPane("Output", id="ptab-output"),
                VerticalScroll(classes="pane-scroll", id="output-scroll"),
            ):
                yield Static(id="plugin-output")
            with TabPane("Config", id="ptab-config"), VerticalScroll(classes="pane-scroll"):
                yield Static(id="plugin-config")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        table = self.query_one("#plugins-table", DataTable)
        for key, label in (
            ("name", "PLUGIN"),
            ("state", "STATE"),
            ("health", "HEALTH"),
            ("version", "VERSION"),
            ("pid", "PID"),
            ("uptime", "UPTIME"),
            ("restarts", "RESTARTS"),
            ("handlers", "HANDLERS"),
            ("error", "LAST ERROR"),
        ):
            table.add_column(label, key=key)
        table.focus()
        self.query_one("#plugins-note", Static).display = False
        self.set_interval(REFRESH_SECS, self.refresh_plugins)
        if self.pulse.conn_state == "connected":
            self.refresh_plugins()

    def refocus(self) -> None:
        self.query_one("#plugins-table", DataTable).focus()

    def resync(self) -> None:
        self.refresh_plugins()

    def connection_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_plugins()
        elif self.pulse.mode_name == EndpointMode.PLUGIN:
            self._endpoint_down("not answering; reconnecting")

    # ------------------------------------------------------------------ data

    @work(exclusive=True, group="plugins-list", exit_on_error=False)
    async def refresh_plugins(self) -> None:
        if self.pulse.conn_state != "connected":
            return
        client = self.pulse.client
        note = self.query_one("#plugins-note", Static)
        if client.mode == EndpointMode.PLUGIN:
            await self._show_endpoint()
            return
        if not client.can(Capability.PLUGINS):
            note.update(
                "Plugins are not available: this server only speaks QueueService (compat mode). "
                "Use :jobs, or point pulse-tui at a Pulse server's operator endpoint."
            )
            self.query_one("#plugins-table").display = False
            self.query_one("#plugin-tabs").display = False
            self.note_only(note)
            return
        try:
            plugins = await client.list_plugins()
        except ClientError as exc:
            self.pulse.report(exc, "listing plugins")
            return
        self.plugins = plugins
        self._fill(plugins)
        await self._load_selected()

    def _fill(self, plugins: list[operator_pb2.Plugin]) -> None:
        table = self.query_one("#plugins-table", DataTable)
        now = fmt.app_now(self.app)
        keep = table.cursor_row
        table.clear()
        for p in plugins:
            state = Text(p.state, style=STATE_STYLES.get(p.state, ""))
            if not p.enabled and p.state != "disabled":
                state.append(" (off)", style="dim")
            if p.state == "backoff" and p.next_restart_at:
                state.append(f" {fmt.duration(max(0, p.next_restart_at - now))}", style="dim")
            if p.draining_instances:
                n = p.draining_jobs
                state.append(f"; draining ({n} job{'s' if n != 1 else ''})", style="#e0af68")
            health = (
                Text("✔ ok", style=fmt.C("#9ece6a"))
                if p.healthy
                else Text("✘ " + (p.health_message or "down"), style=fmt.C("#f7768e"))
            )
            uptime = (
                fmt.duration(now - p.started_at)
                if p.started_at and p.state in ("ready", "unhealthy")
                else "—"
            )
            err = p.last_error.strip().splitlines()[0] if p.last_error.strip() else ""
            table.add_row(
                Text(p.name, style="bold"),
                state,
                health,
                p.version or "—",
                str(p.pid) if p.pid else "—",
                uptime,
                Text(str(p.restarts), style=fmt.C("#e0af68") if p.restarts else "dim"),
                str(len(p.handlers)),
                Text(err[:60], style=fmt.C("#f7768e")),
                key=p.name,
            )
        if plugins:
            table.move_cursor(row=min(keep, len(plugins) - 1))
        else:
            note = self.query_one("#plugins-note", Static)
            note.update("No plugins configured. Add [[plugins]] entries to pulse.toml.")
            note.display = True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "plugins-table" or event.row_key is None:
            return
        name = event.row_key.value
        if self.selected is None or self.selected.name != name:
            self.selected = next((p for p in self.plugins if p.name == name), None)
            self._load_selected_worker()

    @work(exclusive=True, group="plugin-detail", exit_on_error=False)
    async def _load_selected_worker(self) -> None:
        await self._load_selected()

    async def _load_selected(self) -> None:
        table = self.query_one("#plugins-table", DataTable)
        if not self.plugins or not self.pulse.client.can(Capability.PLUGINS):
            return  # a bare plugin endpoint's row is its own metadata: nothing more to ask for
        row = min(max(table.cursor_row, 0), len(self.plugins) - 1)
        name = self.plugins[row].name
        try:
            plugin = await self.pulse.client.get_plugin(name, tail_lines=200)
        except ClientError as exc:
            self.pulse.report(exc, f"loading plugin {name}")
            return
        self.selected = plugin
        self._show_detail(plugin)

    def _show_detail(self, p: operator_pb2.Plugin) -> None:
        reload = self.last_reload if self.last_reload and self.last_reload.plugin.name == p.name else None
        lines = Text()
        if reload is not None:
            lines.append("Last reload: ", style="bold")
            lines.append(f"+{len(reload.added)} added  -{len(reload.removed)} removed  ", style="")
            lines.append(
                f"{len(reload.conflicts)} conflicting", style=fmt.C("#f7768e") if reload.conflicts else "dim"
            )
            lines.append(f"  ({reload.drained_jobs} in-flight job(s) drained", style="dim")
            if reload.draining_jobs:
                lines.append(f"; {reload.draining_jobs} finishing on the old instance", style="dim")
            lines.append(")\n", style="dim")
            for name in reload.added:
                lines.append(f"  + {name}\n", style=fmt.C("#9ece6a"))
            for name in reload.removed:
                lines.append(f"  - {name}\n", style=fmt.C("#f7768e"))
            for name in reload.conflicts:
                lines.append(f"  ! {name} (also claimed by another plugin)\n", style=fmt.C("#e0af68"))
            lines.append("\n")
        lines.append(f"{p.name}", style="bold")
        lines.append(f"  {p.description}\n" if p.description else "\n", style="dim")
        lines.append(f"endpoint {p.endpoint or '—'} · running jobs {p.running_jobs}\n", style="dim")
        if p.draining_instances:
            lines.append(
                f"old instance draining ({p.draining_jobs} job(s)): it finishes them, takes no new ones, "
                "then stops\n",
                style="#e0af68",
            )
        if p.last_error:
            lines.append(f"last error: {p.last_error}\n", style=fmt.C("#f7768e"))
        if p.refused_handlers:
            lines.append(
                f"\n{len(p.refused_handlers)} announced name(s) refused:\n", style=fmt.C("bold #f7768e")
            )
            for why in p.refused_handlers:
                lines.append(f"  ✘ {why}\n", style=fmt.C("#f7768e"))
        if p.unserved:
            lines.append("\ndeclared, not served by this server:\n", style=fmt.C("bold #e0af68"))
            for sentence in p.unserved:
                lines.append(f"  ⚠ {p.name} {sentence}\n", style=fmt.C("#e0af68"))
        endpoint_info = self._endpoint_info if self.pulse.mode_name == EndpointMode.PLUGIN else None
        if endpoint_info is not None:
            who = " · ".join(
                x
                for x in (
                    f"author {endpoint_info.author}" if endpoint_info.author else "",
                    f"license {endpoint_info.license}" if endpoint_info.license else "",
                )
                if x
            )
            if who:
                lines.append(f"{who}\n", style="dim")
            health = "healthy" if endpoint_info.healthy else f"unhealthy: {endpoint_info.health_message}"
            lines.append(f"health: {health}\n", style="" if endpoint_info.healthy else fmt.C("#f7768e"))
            for k, v in sorted(endpoint_info.health_details.items()):
                lines.append(f"  {k}: {v}\n", style="dim")
            lines.append(
                "\nhandlers: unknown (a plugin announces its handlers to the host at Initialize)\n",
                style="bold",
            )
        else:
            lines.append(f"\n{len(p.handlers)} announced handler(s):\n", style="bold")
        for h in p.handlers:
            lines.append(f"  {h}", style="")
            lines.append(f"   ({p.name}/{h})\n", style="dim")
        self.query_one("#plugin-handlers", Static).update(lines)
        out = self.query_one("#plugin-output", Static)
        out.update(
            Text("\n".join(p.output_tail))
            if p.output_tail
            else Text("(no output captured)", style="dim italic")
        )
        scroll = self.query_one("#output-scroll", VerticalScroll)
        scroll.call_after_refresh(scroll.scroll_end, animate=False)
        schema_error = endpoint_info.config_schema_error if endpoint_info is not None else ""
        self.query_one("#plugin-config", Static).update(
            Text(schema_error, style="dim italic") if schema_error else _schema(list(p.config_schema))
        )

    async def _show_endpoint(self) -> None:
        try:
            info = await self.pulse.client.plugin_endpoint()
        except ClientError as exc:
            self._endpoint_down(exc.message)  # never leave the last `ready ✔ ok` up
            self.pulse.report(exc, "plugin endpoint")
            return
        self._endpoint_info = info
        note = self.query_one("#plugins-note", Static)
        health = "healthy" if info.healthy else f"unhealthy: {info.health_message}"
        note.update(
            f"Bare plugin endpoint {self.pulse.address}: {info.name} {info.version} — {health}. "
            "Jobs, reload and enable/disable need a Pulse server."
        )
        note.display = True
        p = operator_pb2.Plugin(
            name=info.name,
            state="ready" if info.healthy else "unhealthy",
            healthy=info.healthy,
            health_message=info.health_message,
            version=info.version,
            description=info.description,
            endpoint=self.pulse.address,
            config_schema=info.config_schema,
            enabled=True,
        )
        self.plugins = [p]
        self._fill(self.plugins)
        self._show_detail(p)

    def _endpoint_down(self, why: str) -> None:
        """The bare plugin endpoint stopped answering: show it as unreachable, keeping what it said
        about itself while it was up."""
        info = self._endpoint_info
        if info is None:
            return
        self._endpoint_info = info = dataclasses.replace(info, healthy=False, health_message=why)
        note = self.query_one("#plugins-note", Static)
        note.update(
            f"Bare plugin endpoint {self.pulse.address}: {info.name} {info.version} — not answering "
            f"({why}). Health is re-polled every {REFRESH_SECS:g}s once it answers again."
        )
        note.display = True
        p = operator_pb2.Plugin(
            name=info.name,
            state="unreachable",
            healthy=False,
            health_message=why,
            version=info.version,
            description=info.description,
            endpoint=self.pulse.address,
            config_schema=info.config_schema,
            enabled=True,
        )
        self.plugins = [p]
        self._fill(self.plugins)
        self._show_detail(p)

    # ------------------------------------------------------------------ actions

    def action_tab(self, step: int) -> None:
        order = ("ptab-handlers", "ptab-output", "ptab-config")
        tabs = self.query_one("#plugin-tabs", TabbedContent)
        i = order.index(tabs.active) if tabs.active in order else 0
        tabs.active = order[(i + step) % len(order)]

    def action_refresh(self) -> None:
        self.refresh_plugins()

    def _current(self) -> operator_pb2.Plugin | None:
        table = self.query_one("#plugins-table", DataTable)
        if not self.plugins:
            self.notify("no plugin selected", severity="warning")
            return None
        return self.plugins[min(max(table.cursor_row, 0), len(self.plugins) - 1)]

    @work(group="plugins-action", exit_on_error=False)
    async def action_reload(self) -> None:
        if not self.pulse.guard("reload plugin", capability=Capability.PLUGINS):
            return
        p = self._current()
        if p is None:
            return
        self.notify(f"reloading {p.name}…")
        try:
            resp = await self.pulse.client.reload_plugin(p.name)
        except ClientError as exc:
            self.pulse.report(exc, f"reload {p.name}")
            return
        self.last_reload = resp
        summary = f"reloaded {p.name}: +{len(resp.added)} -{len(resp.removed)}"
        if resp.conflicts:
            summary += f", {len(resp.conflicts)} conflicting ({', '.join(resp.conflicts[:3])})"
            self.notify(summary, severity="warning", timeout=8)
        else:
            self.notify(summary)
        self.refresh_plugins()

    @work(group="plugins-action", exit_on_error=False)
    async def action_toggle_enabled(self) -> None:
        if not self.pulse.guard("enable/disable plugin", capability=Capability.PLUGINS):
            return
        p = self._current()
        if p is None:
            return
        enable = not p.enabled
        if not enable:
            running = f"\n{p.running_jobs} running job(s) finish first." if p.running_jobs else ""
            ok = await self.app.push_screen_wait(
                ConfirmScreen(
                    "Disable plugin",
                    f"Disable {p.name}? Its {len(p.handlers)} handler(s) stop routing; queued jobs wait.{running}",
                    yes="Disable",
                    danger=True,
                )
            )
            if not ok:
                return
        try:
            await self.pulse.client.set_plugin_enabled(p.name, enable)
        except ClientError as exc:
            self.pulse.report(exc, f"{'enable' if enable else 'disable'} {p.name}")
            return
        self.notify(f"{'enabled' if enable else 'disabled'} {p.name}")
        self.refresh_plugins()


def _schema(fields: list[operator_pb2.ConfigField]) -> Table | Text:
    if not fields:
        return Text("This plugin declares no configuration.", style="dim italic")
    table = Table(expand=True, box=None, padding=(0, 1), header_style="bold dim")
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("description", ratio=1)
    for f in fields:
        name = Text(f.name)
        if f.required:
            name.append(" *", style=fmt.C("#f7768e"))
        limits = config_constraints(f)
        table.add_row(
            name, f.type, f.default_value or "—", f"{f.description} ({limits})" if limits else f.description
        )
    return table
