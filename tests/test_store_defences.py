"""The store's defences against a full disk, a damaged or vanished file, and its durability setting.

Real `pulse-tui serve` processes on real files: a 20 MB tmpfs filled to the last byte (skipped
with the reason when this machine refuses the mount), database files with garbage written over
their pages, truncated to zero bytes or deleted. Figures are printed (run with -s) and recorded in
docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from conftest import start_server_process
from helpers.reliability import SOAK_FULL, connect, stored_jobs

from pulse_tui.config import ConfigError, parse_config
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.errors import StoreCorrupt
from pulse_tui.pulse.jobs import JobFilter
from pulse_tui.pulse.server import ServerSettings
from pulse_tui.pulse.store.sqlite import SQLiteStore

CALL_TIMEOUT = 15.0  # a write must answer long before this: the bug was a hang


# ---------------------------------------------------------------- helpers


def _serve(data_dir: Path, timeout: float = 30) -> tuple[int | None, str]:
    """Start `serve` on `data_dir`; (exit code, stderr) if it refused, (None, stderr) if it came
    up (then it is stopped with SIGTERM at once)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse_tui", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PULSE_CONFIG": str(data_dir.parent / "none.toml")},
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("pulse: listening on "):
            proc.send_signal(signal.SIGTERM)
            _, rest = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, "".join(lines) + rest
            return None, "".join(lines) + rest
    return proc.wait(timeout), "".join(lines)


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def _make_store(tmp_path: Path, jobs: int, payload: bytes = b'{"x": 1}') -> Path:
    """A data dir made by a real server (tokens, database, marker), with `jobs` queued rows added
    straight into its SQLite file (quick, and the rows are what the server would write)."""
    data = tmp_path / "data"
    (tmp_path / "none.toml").write_text(f"[server]\ndata_dir = {json.dumps(str(data))}\n")
    code, text = _serve(data)
    assert code is None, text
    conn = sqlite3.connect(data / "pulse.db")
    now = time.time()
    conn.executemany(
        "INSERT INTO jobs (id, handler, status, payload, created_at, updated_at, run_at)"
        " VALUES (?, 'pulse.noop', 'queued', ?, ?, ?, ?)",
        ((f"job-{i:07d}", payload, now, now, now + 86400) for i in range(jobs)),
    )
    conn.commit()
    conn.close()
    return data


def _scribble(db: Path, first_page: int, pages: int, seed: int = 7) -> None:
    """Write random bytes over whole pages of a SQLite file (page 1, the header, is spared)."""
    rnd = random.Random(seed)
    page = 4096
    with open(db, "r+b") as f:
        for p in range(first_page, first_page + pages):
            f.seek((p - 1) * page)
            f.write(rnd.randbytes(page))


# ---------------------------------------------------------------- 1. a full disk


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(path: Path) -> int:
    """Write `path` until the file system says ENOSPC; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 64 << 10, 4 << 10, 512, 1):
            block = b"\0" * chunk
            while True:
                try:
                    n = f.write(block)
                except OSError:
                    break
                written += n or 0
                if not n:
                    break
    return written


def test_full_disk_fails_fast_and_recovers(small_tmpfs: Path, request: pytest.FixtureRequest):
    """Issue 18.1: on a 20 MB tmpfs filled to the last byte, an enqueue fails at once with
    RESOURCE_EXHAUSTED "the job store's disk is full (…); nothing was stored" (it hung before:
    the failed COMMIT killed the writer), reads keep working, ServerInfo reports the condition,
    writes succeed again as soon as space is freed, and SIGTERM exits 0 without a traceback."""
    srv = start_server_process(small_tmpfs)
    request.addfinalizer(srv.stop)  # a failed assertion leaves no server behind
    c = connect(srv.address, srv.token)
    req = op.EnqueueRequest(handler="pulse.noop", payload=b'{"pad": "' + b"x" * 8000 + b'"}', delay_secs=3600)
    acked = [c.ops.Enqueue(req, metadata=c.md, timeout=CALL_TIMEOUT).job.id for _ in range(5)]
    filler = small_tmpfs / "filler"
    _fill(filler)

    # SQLite may still have room in pages it owns; the first write that needs a new page fails
    error = None
    fail_s = 0.0
    for _ in range(3000):
        t0 = time.monotonic()
        try:
            acked.append(c.ops.Enqueue(req, metadata=c.md, timeout=CALL_TIMEOUT).job.id)
        except grpc.RpcError as exc:
            fail_s = time.monotonic() - t0
            error = exc
            break
    assert error is not None, "the disk never filled up"
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
    assert "the job store's disk is full" in error.details() and "nothing was stored" in error.details()
    assert ("pulse-reason", "STORE_FULL") in error.trailing_metadata()
    assert fail_s < 2.0, fail_s

    info = c.ops.GetServerInfo(op.ServerInfoRequest(), metadata=c.md, timeout=CALL_TIMEOUT)
    assert "disk is full" in info.store_condition
    # reads still work, and every acknowledged job is there (a failed write stored nothing)
    assert sorted(j.id for j in c.all_jobs()) == sorted(acked)
    # a cancel is a write too (it hung before): each answers at once, done or the same error
    cancel_codes = []
    for jid in acked[:5]:
        t0 = time.monotonic()
        try:
            c.ops.CancelJobs(op.JobSelector(ids=[jid]), metadata=c.md, timeout=CALL_TIMEOUT)
            cancel_codes.append("OK")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (exc.code(), exc.details())
            cancel_codes.append(exc.code().name)
        assert time.monotonic() - t0 < 2.0

    filler.unlink()
    t0 = time.monotonic()
    acked.append(c.ops.Enqueue(req, metadata=c.md, timeout=CALL_TIMEOUT).job.id)
    recover_s = time.monotonic() - t0
    info = c.ops.GetServerInfo(op.ServerInfoRequest(), metadata=c.md, timeout=CALL_TIMEOUT)
    assert info.store_condition == ""
    stored = {j.id for j in c.all_jobs()}
    assert set(acked) <= stored
    c.close()

    assert srv.stop() == 0, srv.output()
    out = srv.output()
    assert "Traceback" not in out, out
    assert "disk is full" in out and "can write again" in out, out  # logged once each way
    ok = sqlite3.connect(srv.data_dir / "pulse.db").execute("PRAGMA quick_check").fetchone()[0]
    assert ok == "ok"
    figures = {"error_after_s": round(fail_s, 4), "first_write_after_free_s": round(recover_s, 4)}
    print("disk-full", {**figures, "cancels": cancel_codes})


# ---------------------------------------------------------------- 2. a damaged or vanished file


def test_damaged_pages_refuse_to_start(tmp_path: Path):
    """Issue 18.2: garbage over table pages. Before: the server started, then list/get failed
    with INTERNAL and enqueue hung. Now `quick_check` at open refuses: exit 2, one `error:` line
    naming the file and what to do; the file is left as it was."""
    data = _make_store(tmp_path, 2000, payload=b'{"pad": "' + b"y" * 300 + b'"}')
    db = data / "pulse.db"
    pages = db.stat().st_size // 4096
    _scribble(db, pages // 2, 8)
    before = db.read_bytes()

    code, text = _serve(data)
    assert code == 2, text
    errors = _error_lines(text)
    assert len(errors) == 1, text
    assert str(db) in errors[0] and "damaged" in errors[0], errors
    assert "restore it from a backup" in errors[0] and "aside" in errors[0], errors
    assert "Traceback" not in text
    assert db.read_bytes() == before


def test_zero_byte_store_refuses_to_start(tmp_path: Path):
    """Issue 18.2: a zero-byte pulse.db where a store lived (2,000 jobs) started silently empty.
    Now the server refuses, naming the file; once the marker is moved aside it starts fresh."""
    data = _make_store(tmp_path, 2000)
    db = data / "pulse.db"
    assert (data / "pulse.db.created").exists()
    db.write_bytes(b"")

    code, text = _serve(data)
    assert code == 2, text
    errors = _error_lines(text)
    assert len(errors) == 1 and str(db) in errors[0] and "empty (0 bytes)" in errors[0], text
    assert db.stat().st_size == 0  # nothing was created over it

    db.unlink()  # missing, the marker still there: refused too
    code, text = _serve(data)
    assert code == 2 and "is missing" in text and "pulse.db.created" in text, text

    (data / "pulse.db.created").rename(data / "old-marker")  # what the message says to do
    code, text = _serve(data)
    assert code is None, text
    assert stored_jobs(data) == [] and (data / "pulse.db.created").exists()


def test_zero_byte_store_without_marker_is_refused(tmp_path: Path):
    """A store made before markers existed: a zero-byte file beside the server's token file is
    a store that lived here, not a fresh one."""
    data = _make_store(tmp_path, 10)
    (data / "pulse.db.created").unlink()
    (data / "pulse.db").write_bytes(b"")
    code, text = _serve(data)
    assert code == 2 and "token file" in text, text


def test_fresh_data_dir_starts_and_writes_marker(tmp_path: Path):
    data = tmp_path / "data"
    (tmp_path / "none.toml").write_text("")
    code, text = _serve(data)
    assert code is None, text
    assert (data / "pulse.db").stat().st_size > 0 and (data / "pulse.db.created").exists()
    code, text = _serve(data)  # and it starts again on its own store
    assert code is None, text


def test_damage_while_serving_is_a_specific_error(tmp_path: Path, request: pytest.FixtureRequest):
    """Issue 18.2: a page damaged under a running server. Reads that meet it fail with DATA_LOSS
    naming the file (not INTERNAL), writes answer (never hang), ServerInfo says the store is
    damaged, and SIGTERM still exits."""
    data = _make_store(tmp_path, 6000, payload=b'{"pad": "' + b"z" * 2000 + b'"}')  # ~ 16 MB > caches
    srv = start_server_process(tmp_path)  # on tmp_path / "data"
    request.addfinalizer(srv.stop)  # a failed assertion leaves no server behind
    c = connect(srv.address, srv.token)
    db = data / "pulse.db"
    pages = db.stat().st_size // 4096
    _scribble(db, 3, pages - 3)

    with pytest.raises(grpc.RpcError) as err:
        for j in range(0, 6000, 500):  # a text filter scans the table, page after page
            c.ops.ListJobs(
                op.ListJobsRequest(limit=1000, filter=op.JobFilter(text=f"job-{j:07d}x")),
                metadata=c.md,
                timeout=CALL_TIMEOUT,
            )
    assert err.value.code() == grpc.StatusCode.DATA_LOSS, (err.value.code(), err.value.details())
    assert str(db) in err.value.details() and "damaged" in err.value.details()
    assert ("pulse-reason", "STORE_CORRUPT") in err.value.trailing_metadata()

    for _ in range(20):  # each write answers, whatever it meets
        try:
            c.ops.CancelJobs(
                op.JobSelector(filter=op.JobFilter(statuses=["queued"])), metadata=c.md, timeout=CALL_TIMEOUT
            )
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAVAILABLE), exc
            assert exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED

    info = c.ops.GetServerInfo(op.ServerInfoRequest(), metadata=c.md, timeout=CALL_TIMEOUT)
    assert info.store_condition == "the job store is damaged"  # even though its counts fail
    c.close()
    code = srv.stop()
    assert code in (0,), srv.output()
    assert "Traceback" not in srv.output(), srv.output()


# ---------------------------------------------------------------- 3. durability


async def test_durability_sets_synchronous(tmp_path: Path):
    """Issue 18.3: "full" (the default) is synchronous=FULL, "normal" synchronous=NORMAL."""
    for durability, expected in ((None, 2), ("full", 2), ("normal", 1)):
        kwargs = {} if durability is None else {"durability": durability}
        store = SQLiteStore(str(tmp_path / f"{durability}.db"), **kwargs)
        await store.open()
        try:
            assert store._wconn is not None
            assert store._wconn.execute("PRAGMA synchronous").fetchone()[0] == expected
        finally:
            await store.close()
    with pytest.raises(ValueError, match="durability must be one of 'full', 'normal', got 'fast'"):
        SQLiteStore(str(tmp_path / "x.db"), durability="fast")
    assert not (tmp_path / "x.db").exists()


def test_durability_config(tmp_path: Path):
    cfg = parse_config('[server]\ndurability = "normal"\n', file="pulse.toml", base_dir=tmp_path)
    assert cfg.server.durability == "normal"
    assert ServerSettings.from_config(cfg).durability == "normal"
    assert ServerSettings.from_config(parse_config("", file="p.toml", base_dir=tmp_path)).durability == "full"
    with pytest.raises(ConfigError, match=r"durability.*expected \"full\" or \"normal\", got 'fast'"):
        parse_config('[server]\ndurability = "fast"\n', file="pulse.toml", base_dir=tmp_path)


async def test_store_open_refusals_in_process(tmp_path: Path):
    """The same refusals from the store itself (what server.py turns into exit 2)."""
    db = tmp_path / "pulse.db"
    store = SQLiteStore(str(db))
    await store.open()
    await store.close()
    db.write_bytes(b"")
    for content, marker, match in (
        (b"", True, "is empty"),
        (b"SQLite format 3\0" + b"\xff" * 8192, False, "damaged or not a SQLite database"),
    ):
        db.write_bytes(content)
        if not marker:
            with contextlib.suppress(FileNotFoundError):
                (tmp_path / "pulse.db.created").unlink()
        store = SQLiteStore(str(db))
        with pytest.raises(StoreCorrupt, match=match):
            await store.open()
        await store.close()
        assert db.read_bytes() == content


async def test_console_shows_a_full_disk(small_tmpfs: Path, monkeypatch):
    """Issue 18.1: the console's status bar shows the condition the server reports, and clears it
    once the store writes again. A real server on a full tmpfs, the real console (Textual pilot)."""
    import pulse_tui.app as app_mod
    from pulse_tui.app import PulseApp
    from pulse_tui.client import ClientError, PulseClient
    from pulse_tui.widgets.status_bar import StatusBar

    monkeypatch.setattr(app_mod, "STORE_CHECK_INTERVAL", 0.5)  # the console asks every 5 s
    STORE_CHECK_INTERVAL = app_mod.STORE_CHECK_INTERVAL

    srv = start_server_process(small_tmpfs)
    client = PulseClient(srv.address, srv.token)
    await client.probe()
    pad = {"pad": "x" * 8000}
    app = PulseApp(srv.address, srv.token)
    loop = asyncio.get_running_loop()

    async def until(cond, what: str, timeout: float = 3 * STORE_CHECK_INTERVAL) -> None:
        deadline = loop.time() + timeout
        while not cond():
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await pilot.pause(0.05)

    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await app.wait_connected()
            bar = app.screen.query_one(StatusBar)
            assert bar.store == "" and "⚠" not in str(bar.render())
            filler = small_tmpfs / "filler"
            await asyncio.to_thread(_fill, filler)
            with pytest.raises(ClientError) as err:
                for _ in range(3000):
                    await client.enqueue("pulse.noop", pad, delay_secs=3600)
            assert err.value.code == "RESOURCE_EXHAUSTED" and err.value.reason == "STORE_FULL"
            await until(lambda: "disk is full" in bar.store, "the status bar to show the full disk")
            assert "⚠ the job store's disk is full" in str(bar.render())
            filler.unlink()
            await client.enqueue("pulse.noop", pad, delay_secs=3600)
            await until(lambda: bar.store == "", "the status bar to clear")
    finally:
        await client.close()
        assert srv.stop() == 0


@pytest.mark.slow
async def test_quick_check_cost_at_open(tmp_path: Path):
    """What the check at open costs: 50,000 jobs in `make test`, 1,000,000 in `make soak`."""
    n = 1_000_000 if SOAK_FULL else 50_000
    db = tmp_path / "pulse.db"
    store = SQLiteStore(str(db))
    await store.open()
    await store.close()
    conn = sqlite3.connect(db)
    now = time.time()
    statuses = ["completed"] * 8 + ["failed", "queued"]
    conn.executemany(
        "INSERT INTO jobs (id, handler, status, payload, created_at, updated_at, run_at, completed_at)"
        " VALUES (?, 'demo.echo', ?, ?, ?, ?, ?, ?)",
        ((f"{i:032x}", statuses[i % 10], b'{"i": %d}' % i, now, now, now, now) for i in range(n)),
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(str(db))
    t0 = time.perf_counter()
    await store.open()
    open_s = time.perf_counter() - t0
    await store.close()
    assert 0 < store.quick_check_secs <= open_s
    assert store.quick_check_secs < n / 50_000  # well under 20 s for 1M jobs even on a busy machine
    size_mb = db.stat().st_size / 1e6
    print(
        "quick_check", {"jobs": n, "db_mb": round(size_mb), "quick_check_s": round(store.quick_check_secs, 2)}
    )


async def test_full_store_in_process_fails_fast_and_recovers(tmp_path: Path):
    """The same defence without a tmpfs (runs anywhere): SQLite's own page limit
    (`PRAGMA max_page_count`) makes the file "full". Writes fail with StoreFull and store nothing,
    the condition is reported, and once the limit is raised the next write succeeds."""
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.errors import StoreFull
    from pulse_tui.pulse.handlers import StaticRouter

    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
    engine = Engine(store, StaticRouter(), retention_secs=None)
    pad = b'{"pad": "' + b"p" * 3000 + b'"}'
    try:
        first = await engine.enqueue("pulse.noop", pad, delay_secs=3600)
        assert store._wconn is not None
        pages = store._wconn.execute("PRAGMA page_count").fetchone()[0]
        store._wconn.execute(f"PRAGMA max_page_count={pages}")
        results = await asyncio.gather(
            *(engine.enqueue("pulse.noop", pad, delay_secs=3600) for _ in range(20)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors and all(isinstance(e, StoreFull) for e in errors), errors
        assert (
            "the job store's disk is full" in errors[0].message and "nothing was stored" in errors[0].message
        )
        assert store.condition == "the job store's disk is full"
        stored = {j.id for j in await store.list(JobFilter(), 100, None, True, 0)}
        assert stored == {first.id} | {r.id for r in results if not isinstance(r, BaseException)}

        store._wconn.execute(f"PRAGMA max_page_count={pages * 100}")
        later = await engine.enqueue("pulse.noop", pad, delay_secs=3600)
        assert store.condition == ""
        assert await store.get(later.id) is not None
    finally:
        await store.close()


async def test_writes_queued_behind_a_lock_timeout_fail_with_it(tmp_path: Path):
    """Another process holds the write lock. The first write waits the lock timeout and fails;
    writes queued behind it meanwhile fail right after it, not one lock timeout later each; the
    condition says the store is locked; once the lock is released the next write succeeds and the
    condition clears."""
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.errors import Unavailable
    from pulse_tui.pulse.handlers import StaticRouter
    from pulse_tui.pulse.store.sqlite import LOCKED

    lock_timeout = 1.0
    store = SQLiteStore(str(tmp_path / "pulse.db"), lock_timeout=lock_timeout)
    await store.open()
    engine = Engine(store, StaticRouter(), retention_secs=None)
    locker = sqlite3.connect(tmp_path / "pulse.db", timeout=0, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        first = asyncio.create_task(engine.enqueue("pulse.noop", b"{}"))
        async with asyncio.timeout(10):  # the writer has taken the first write into a batch
            while not first.done() and store._queue == []:
                await asyncio.sleep(0)
            while store._queue:
                await asyncio.sleep(0.01)
        behind = [asyncio.create_task(engine.enqueue("pulse.noop", b"{}")) for _ in range(5)]
        with pytest.raises(Unavailable, match="locked by another process"):
            await first
        first_failed = time.monotonic()
        results = await asyncio.gather(*behind, return_exceptions=True)
        last_failed = time.monotonic()
        assert all(isinstance(r, Unavailable) for r in results), results
        assert first_failed - t0 >= lock_timeout * 0.9
        # before: the writes behind waited a lock timeout of their own (1 s more)
        assert last_failed - first_failed < lock_timeout / 2, last_failed - first_failed
        assert store.condition == LOCKED
        locker.execute("ROLLBACK")
        job = await engine.enqueue("pulse.noop", b"{}")
        assert store.condition == "" and await store.get(job.id) is not None
    finally:
        locker.close()
        await store.close()


async def test_an_abandoned_read_is_interrupted_and_frees_its_reader(tmp_path: Path) -> None:
    """A read whose caller is cancelled (a console that typed on: its page and count of the
    previous filter) stops in SQLite rather than holding the reader through a long scan."""
    store = SQLiteStore(str(tmp_path / "r.db"), readers=1)
    await store.open()
    try:
        slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50000000) SELECT count(*) FROM c"
        begun = asyncio.Event()
        loop = asyncio.get_running_loop()

        def op(conn: sqlite3.Connection) -> int:
            loop.call_soon_threadsafe(begun.set)
            return conn.execute(slow).fetchone()[0]

        task = asyncio.create_task(store._read(op))
        await asyncio.wait_for(begun.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.monotonic()
        counts = await asyncio.wait_for(store.count(JobFilter(), 10), 10)  # the only reader is free
        assert time.monotonic() - t0 < 2.0 and sum(counts.values()) == 0
        assert (
            await store._read(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
        )  # not left interrupted
    finally:
        await store.close()


async def test_a_shared_count_is_abandoned_with_its_last_caller(tmp_path: Path) -> None:
    """A count shared by callers waiting for a reader goes on while one of them still waits, and is
    abandoned (never read, or interrupted) once the last is cancelled: a console typing a filter
    on must not leave the counts of the previous filters scanning on the reader threads."""
    store = SQLiteStore(str(tmp_path / "c.db"), readers=1)
    await store.open()
    try:
        slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50000000) SELECT count(*) FROM c"
        begun = asyncio.Event()
        loop = asyncio.get_running_loop()

        def hold(conn: sqlite3.Connection) -> int:
            loop.call_soon_threadsafe(begun.set)
            return conn.execute(slow).fetchone()[0]

        async def blocked() -> asyncio.Task[int]:
            """The only reader held by a read that runs until its task is cancelled."""
            begun.clear()
            task = asyncio.create_task(store._read(hold))
            await asyncio.wait_for(begun.wait(), 10)
            return task

        async def release(task: asyncio.Task[int]) -> None:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        flt = JobFilter(text="x")
        # two callers share one count; the first is cancelled: the count goes on for the second
        blocker = await blocked()
        first = asyncio.create_task(store.count(flt, 10))
        second = asyncio.create_task(store.count(flt, 10))
        await asyncio.sleep(0)  # both have joined the count queued behind the blocker
        assert len(store._count_flights) == 1
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert len(store._count_flights) == 1
        await release(blocker)
        assert await asyncio.wait_for(second, 10) == {s: 0 for s in J.STATUSES}
        assert not store._count_flights

        # the only caller is cancelled: the read is abandoned (it would otherwise run once the
        # reader is free), and a caller arriving after that starts a count of its own
        blocker = await blocked()
        only = asyncio.create_task(store.count(flt, 10))
        await asyncio.sleep(0)
        (flight,) = store._count_flights.values()
        only.cancel()
        with pytest.raises(asyncio.CancelledError):
            await only
        assert not store._count_flights
        late = asyncio.create_task(store.count(flt, 10))
        await release(blocker)
        with pytest.raises(asyncio.CancelledError):
            await flight.fut
        assert await asyncio.wait_for(late, 10) == {s: 0 for s in J.STATUSES}
    finally:
        await store.close()


async def test_a_cancelled_read_stops_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The PostgreSQL counterpart of the interrupted SQLite read: a console that cancels a count
    or a page (typing a filter on) stops the query on the database server, not only the wait for
    it. The reads are held on a table lock, so a query the cancel did not reach would still be
    active (waiting on that lock) in pg_stat_activity; after the cancels the pool still reads."""
    import asyncpg

    from pulse_tui.client import PulseClient, job_filter
    from pulse_tui.config import Config
    from pulse_tui.pulse.server import PulseServer

    settings = ServerSettings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", db=pg_url, grace=2.0, retention_secs=None
    )
    srv = PulseServer(settings, Config())
    await srv.start()
    monitor = await asyncpg.connect(pg_url)
    locker = await asyncpg.connect(pg_url)
    active = (  # the text filter's reads (the server's own background reads search no text)
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
        " AND datname = current_database() AND query LIKE '%FROM jobs%' AND query LIKE '%source ILIKE%'"
    )

    async def until(want: int) -> None:
        async with asyncio.timeout(10):
            while await monitor.fetchval(active) != want:
                await asyncio.sleep(0.02)

    try:
        token = (settings.data_dir / "token").read_text().strip()
        async with PulseClient(srv.address, token) as client:
            await client.probe()
            flt = job_filter(text="x")
            lock = locker.transaction()
            await lock.start()
            await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            try:
                for read in (client.count_jobs(flt), client.list_jobs(flt)):
                    task = asyncio.ensure_future(read)
                    await until(1)  # the read is running on the server, waiting for the lock
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                    await until(0)  # ... and stopped there while the lock is still held
            finally:
                await lock.rollback()
            assert (await asyncio.wait_for(client.count_jobs(flt), 10)).total == 0
    finally:
        await locker.close()
        await monitor.close()
        await srv.stop(0)
