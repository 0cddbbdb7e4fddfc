"""Packaging: the wheel carries everything (CSS, generated protocol, bundled plugins) and the
installed `pulse-tui` runs from a fresh virtualenv, outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=out,
    )
    (whl,) = out.glob("pulse_tui-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "pulse_tui/app.tcss" in names
    assert "pulse_tui/protocol/operator_pb2.py" in names
    assert "pulse_tui/protocol/queue_pb2_grpc.py" in names
    assert any(n.startswith("pulse_tui/plugins/demo") for n in names)
    assert any(n.startswith("pulse_tui/sdk/") for n in names)


def test_installed_wheel_runs(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # The dependencies are the ones this test runs with, offline: their site-packages is on the new
    # venv's path through a .pth line (so the .pth files in it, the editable source checkout among
    # them, are not read), and pip resolves the wheel's requirements against what is installed
    # there. The project itself comes only from the wheel (cwd is a temp dir).
    (site_dir,) = (env_dir / "lib").glob("python*/site-packages")
    (site_dir / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv's own path
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-index", str(wheel)],
        check=True,
        cwd=tmp_path,
        env=clean,
    )
    where = subprocess.run(
        [str(py), "-c", "import pulse_tui; print(pulse_tui.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        check=True,
    )
    assert where.stdout.strip().startswith(str(site_dir)), where.stdout
    exe = env_dir / "bin" / "pulse-tui"
    v = subprocess.run([str(exe), "--version"], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert v.stdout.strip().startswith("pulse-tui ")
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [str(exe), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on" in line:
                break
        else:
            pytest.fail("serve exited without listening")
        assert (data / "token").exists()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
