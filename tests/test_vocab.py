"""The shared vocabulary (pulse_tui.vocab): the wire strings stay what they were, server and client
use the same words, a capability typo fails loudly, and the module pulls in nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pulse_tui import client as C
from pulse_tui.pulse import jobs as J
from pulse_tui.pulse import metrics
from pulse_tui.vocab import (
    CAPABILITIES,
    FINISHED,
    STATUSES,
    Capability,
    EndpointMode,
    JobStatus,
    PauseReason,
    Reason,
)


def test_wire_strings_are_unchanged() -> None:
    assert list(STATUSES) == ["queued", "running", "paused", "completed", "failed", "cancelled"]
    assert FINISHED == {"completed", "failed", "cancelled"}
    assert [m.value for m in EndpointMode] == ["operator", "compat", "plugin"]
    assert [r.value for r in PauseReason] == ["user_requested", "budget_exceeded", "handler_paused"]
    assert CAPABILITIES[EndpointMode.COMPAT] == {
        "jobs",
        "detail",
        "counts",
        "enqueue",
        "cancel",
        "retry",
        "pause",
    }
    assert CAPABILITIES[EndpointMode.PLUGIN] == {"plugin-endpoint"}
    assert CAPABILITIES[EndpointMode.OPERATOR] == {
        *("jobs", "watch", "detail", "counts", "enqueue", "enqueue-many", "cancel", "retry", "bulk"),
        *("pause", "pause-handlers"),
        *("delete", "plugins", "handlers", "schedules", "scripts", "stats"),
    }
    # a StrEnum is its string wherever it goes: formatting, JSON, dict keys
    assert f"{JobStatus.QUEUED}" == "queued" and {"queued": 1}[JobStatus.QUEUED] == 1


def test_server_and_client_share_the_words() -> None:
    assert J.STATUSES is STATUSES and C.STATUSES is STATUSES
    assert J.FINISHED is FINISHED and C.FINISHED is FINISHED
    assert (J.QUEUED, J.PAUSED, C.COMPAT) == (JobStatus.QUEUED, JobStatus.PAUSED, EndpointMode.COMPAT)
    assert {str(r) for r in Reason} >= {"UNKNOWN_HANDLER", "DUPLICATE_JOB", "READ_ONLY", "STORE_FULL"}
    assert set(metrics.GAUGE_STATUSES) - {"due"} <= set(STATUSES)


def test_a_capability_typo_fails_loudly() -> None:
    client = C.PulseClient("127.0.0.1:1")
    assert not client.can(Capability.JOBS)  # not probed: nothing is known to work
    client.mode = EndpointMode.COMPAT
    assert client.can(Capability.CANCEL) and not client.can(Capability.WATCH)
    assert client.can("cancel")  # type: ignore[arg-type]  # a right string still works
    with pytest.raises(ValueError, match="'cancle' is not a valid Capability"):
        client.can("cancle")  # type: ignore[arg-type]


def test_vocab_pulls_in_nothing_and_the_console_not_the_server() -> None:
    code = (
        "import sys, pulse_tui.vocab; a = sorted(m for m in sys.modules if m.startswith('pulse_tui'));"
        "import pulse_tui.app; b = sorted(m for m in sys.modules if m.startswith('pulse_tui.pulse'));"
        "print(a, b)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['pulse_tui', 'pulse_tui.vocab'] []", out.stdout + out.stderr
