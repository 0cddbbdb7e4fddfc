"""The committed generated code must equal a fresh `scripts/gen_proto.sh` run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "src" / "pulse_tui" / "protocol"


def test_generated_protocol_matches_protos(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    fresh_dir = tmp_path / "pulse_tui" / "protocol"
    fresh = {p.name for p in fresh_dir.iterdir() if p.is_file()}
    committed = {p.name for p in COMMITTED.iterdir() if p.is_file() and p.name != "__init__.py"}
    assert fresh == committed, f"generated files differ: {sorted(fresh ^ committed)}; run `make proto`"
    stale = [
        name for name in sorted(fresh) if (fresh_dir / name).read_bytes() != (COMMITTED / name).read_bytes()
    ]
    assert not stale, f"generated code is stale: {stale}; run `make proto` and commit the result"
