"""tui_first_paint_s_1m, tui_keypress_p95_ms_1m, tui_rss_mb_1m: the Jobs screen over a store of
1,000,000 jobs (quick mode: fewer, see sizes.py).

The store is built in a child process (bench.tui_store), then a real `pulse-tui serve` runs on
it, and this process runs `pulse_tui.app.PulseApp` headless (App.run_test, 120×40).

- first paint: from entering run_test to the first frame that draws a job row (JobTable.render_line
  is wrapped to note when it draws a row that holds a job);
- keypress: from pilot.press to the frame that draws the cursor's row holding a job, for
  down ×40, pagedown ×15, end, home, and a filter (`/`, type `status:failed`, enter; timed from
  the enter) — fetches from the server included; typing a filter (`handler:demo.s`): each key to
  the frame drawing the filter line with it (`type`), then enter to the frame drawing the cursor
  row of the filtered list (`typed-filter`); then down ×20 and pagedown ×10 sorted by error;
- RSS: this process (the TUI and nothing else) after the key sequence, from /proc/self/status.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass

from bench.common import Result, main, percentile, python_child, rss_mb, temp_dir
from bench.serve import Server
from bench.sizes import tui_store_rows

SIZE = (120, 40)


@dataclass(slots=True)
class Paint:
    t: float
    wall: float  # time.time(), comparable with other processes' clocks
    row: int
    job_id: str
    status: str
    progress: int
    handler: str = ""


class PaintLog:
    """Wraps JobTable.render_line (class-wide) to note every drawn row that holds a job."""

    def __init__(self) -> None:
        from pulse_tui.widgets.job_table import JobTable

        self.paints: list[Paint] = []
        original = JobTable.render_line
        log = self.paints

        def render_line(table: JobTable, y: int):
            strip = original(table, y)
            if y > 0:
                row = int(table.scroll_y) + y - 1
                job = table.job_at(row)
                if job is not None:
                    log.append(
                        Paint(
                            time.perf_counter(),
                            time.time(),
                            row,
                            job.id,
                            job.status,
                            job.progress_current,
                            job.handler,
                        )
                    )
                    if len(log) > 200_000:
                        del log[:100_000]
            return strip

        JobTable.render_line = render_line  # type: ignore[method-assign]

        # the filter line: (time, value) each time it is drawn holding a value (an empty one
        # draws its placeholder, which starts with `handler:demo`)
        from textual.widgets import Input

        self.typed: list[tuple[float, str]] = []
        original_input = Input.render_line
        typed = self.typed

        def input_line(inp: Input, y: int):
            strip = original_input(inp, y)
            if inp.id == "filter" and inp.value:
                typed.append((time.perf_counter(), inp.value))
            return strip

        Input.render_line = input_line  # type: ignore[method-assign]

        def restore() -> None:
            JobTable.render_line = original  # type: ignore[method-assign]
            Input.render_line = original_input  # type: ignore[method-assign]

        self._restore = restore

    def close(self) -> None:
        self._restore()

    def typed_after(self, t0: float, text: str) -> float | None:
        """When the filter line was first drawn holding ``text`` at or after t0."""
        for t, drawn in self.typed:
            if t >= t0 and drawn == text:
                return t
        return None

    def first_after(self, t0: float, pred) -> Paint | None:
        for p in reversed(self.paints):
            if p.t < t0:
                break
        for p in self.paints:
            if p.t >= t0 and pred(p):
                return p
        return None


async def until(pilot, cond, what: str, timeout: float = 30.0):
    deadline = time.perf_counter() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await pilot.pause(0.002)


async def drive(srv: Server) -> dict:
    from pulse_tui.app import PulseApp
    from pulse_tui.widgets.job_table import JobTable

    paints = PaintLog()
    app = PulseApp(srv.address, srv.token)
    keys: dict[str, list[float]] = {}
    to_idle: list[float] = []  # typing: each key to Textual's pilot seeing the app idle again
    t0 = time.perf_counter()
    try:
        async with app.run_test(size=SIZE) as pilot:
            first = await until(pilot, lambda: paints.first_after(t0, lambda p: True), "first paint")
            first_paint_s = first.t - t0
            await app.wait_connected()

            def table() -> JobTable:  # always the live screen's table (screens may be rebuilt)
                return app.screen.query_one(JobTable)

            await until(
                pilot,
                lambda: table().total > 1000 and table().has_focus and table().loaded_rows >= SIZE[1] - 4,
                "the table to fill and take focus",
            )

            refocused = 0

            async def press(name: str, *ks: str, check=None) -> None:
                nonlocal refocused
                if name not in ("filter", "typed-filter") and app.focused is not table():
                    # seen on a freshly started app: the table gets a Hide event and loses focus,
                    # so keys do nothing; give it focus back and count it (reported in extras)
                    refocused += 1
                    table().focus()
                    await until(pilot, lambda: app.focused is table(), "the table to take focus")
                ts = time.perf_counter()
                await pilot.press(*ks)

                def painted() -> Paint | None:
                    cur = table().cursor
                    return paints.first_after(ts, lambda p: p.row == cur and (check is None or check(p)))

                try:
                    p = await until(pilot, painted, f"paint after {name}", timeout=20)
                except TimeoutError:
                    t = table()
                    last = [(round(x.t - ts, 3), x.row) for x in paints.paints[-5:]]
                    raise TimeoutError(
                        f"no paint of the cursor row after {name}: cursor={t.cursor} focus={app.focused}"
                        f" running={app.is_running} exc={app._exception!r} total={t.total} loaded={t.loaded_rows} job={t.current_job is not None} last={last}"
                    ) from None
                keys.setdefault(name, []).append((p.t - ts) * 1000)

            for _ in range(40):
                await press("down", "down")
            for _ in range(15):
                await press("pagedown", "pagedown")
            await press("end", "end")
            await press("home", "home")
            await pilot.press("slash", *"status:failed")
            await press("filter", "enter", check=lambda p: p.status == "failed")
            for _ in range(10):
                await press("down", "down")
            # filter as you type: each key to the frame drawing the filter line with it (the list
            # and count are fetched after a 0.25 s pause in typing, off the key path); then enter
            # to the frame drawing the cursor row of the filtered list
            await pilot.press("escape", "slash", "ctrl+u")
            line = ""
            for ch in "handler:demo.s":
                line += ch
                ts = time.perf_counter()
                await pilot.press(ch)
                idle = time.perf_counter()
                t = await until(pilot, lambda: paints.typed_after(ts, line), f"typed {line!r}")  # noqa: B023
                keys.setdefault("type", []).append((t - ts) * 1000)
                to_idle.append((idle - ts) * 1000)
            await press("typed-filter", "enter", check=lambda p: p.handler.startswith("demo.s"))
            await until(pilot, lambda: table().total > 0 and table().job_at(0) is not None, "typed filter")
            # sorted by a column no index orders (error: ranks the newest 50,000)
            await pilot.press("escape")
            await app.run_command_line(":sort error")
            await until(pilot, lambda: table().job_at(0) is not None and table().sort_by == "error", "sorted")
            for _ in range(20):
                await press("sorted-down", "down")
            for _ in range(10):
                await press("sorted-pagedown", "pagedown")
            gc.collect()
            rss = rss_mb()
            total = table().total
    finally:
        paints.close()
    return {
        "first_paint_s": first_paint_s,
        "keys": keys,
        "rss_mb": rss,
        "total": total,
        "refocused": refocused,
        "type_to_idle": to_idle,
    }


def run(quick: bool) -> Result:
    n = tui_store_rows(quick)
    with temp_dir("tui") as d:
        srv = Server(d)
        builder = python_child(["-m", "bench.tui_store", str(srv.db_path), str(n)])
        m = builder.wait_line(r"^BUILT ([0-9.]+)", timeout=300)
        build_s = float(m.group(1))
        rss_before = rss_mb()
        with srv:
            out = asyncio.run(drive(srv))
    all_keys = [ms for v in out["keys"].values() for ms in v]
    per_key = {k: round(percentile(v, 95), 1) for k, v in out["keys"].items()}
    size = f"{n:,} jobs" + (" (quick: fewer than 1M)" if n < 1_000_000 else "")
    return Result(
        figures={
            "tui_first_paint_s_1m": out["first_paint_s"],
            "tui_keypress_p95_ms_1m": percentile(all_keys, 95),
            "tui_rss_mb_1m": out["rss_mb"],
        },
        notes={
            "tui_first_paint_s_1m": f"{size}; PulseApp.run_test {SIZE[0]}x{SIZE[1]} against `pulse-tui serve`:"
            " start to the first frame drawing a job row",
            "tui_keypress_p95_ms_1m": f"{size}; {len(all_keys)} presses (down, pagedown, end, home, filter,"
            " typing a filter and its enter, down and pagedown sorted by error):"
            " press to the frame drawing the cursor row",
            "tui_rss_mb_1m": f"{size}; VmRSS of the process running the TUI, after the key sequence",
        },
        params={"rows": n, "size": list(SIZE)},
        extra={
            "tui_store_build_s": round(build_s, 2),
            "tui_keypress_p95_by_key_ms": per_key,
            "tui_keypress_max_ms": round(max(all_keys), 1),
            # what `type` measured before (each key to pilot.press returning): Textual's pilot
            # waits for two 20 ms slices of an idle process, ~60 ms for a bare Input app
            "tui_type_to_idle_p95_ms": round(percentile(out["type_to_idle"], 95), 1),
            "tui_rss_before_app_mb": round(rss_before, 1),
            "tui_focus_lost_before_keys": out["refocused"],
        },
    )


if __name__ == "__main__":
    main(run)
