"""scripts/screenshots.py loaded once as a module, for the snapshot tests that share its stable data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load():  # noqa: ANN201
    if "pulse_screenshots" in sys.modules:
        return sys.modules["pulse_screenshots"]
    spec = importlib.util.spec_from_file_location("pulse_screenshots", ROOT / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pulse_screenshots"] = module
    spec.loader.exec_module(module)
    return module
