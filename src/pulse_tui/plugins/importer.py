"""A tiny importer plugin. It claims `data.import` (also announced by `demo`) and
`data.batch_import` (demo has `data.batch-import`), so examples/demo.toml shows the registry's
exact- and near-conflict reporting out of the box."""

from __future__ import annotations

from typing import Any

from pulse_tui.sdk import Context, Plugin

plugin = Plugin("importer", version="1.0.0", description="imports and exports records (example)")


def _records(payload: Any) -> list[Any]:
    records = payload.get("records", []) if isinstance(payload, dict) else []
    return records if isinstance(records, list) else [records]


@plugin.handler("data.import")
async def data_import(ctx: Context, payload: Any) -> dict[str, Any]:
    records = _records(payload)
    for i, _ in enumerate(records, 1):
        ctx.progress(i, len(records))
    return {"imported_by": "importer", "count": len(records)}


@plugin.handler("data.export")
async def data_export(ctx: Context, payload: Any) -> dict[str, Any]:
    return {"exported_by": "importer", "records": _records(payload)}


@plugin.handler("data.batch_import")
async def batch_import(ctx: Context, payload: Any) -> dict[str, Any]:
    return {"imported_by": "importer", "batch": True, "count": len(_records(payload))}


if __name__ == "__main__":
    plugin.run()
