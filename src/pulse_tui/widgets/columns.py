"""Fitting a table's columns into a narrow terminal: the widest cells are shortened (with an
ellipsis) column by column, down to each column's minimum, until every column is on screen."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable

from pulse_tui.widgets import fmt


def fit_columns(
    rows: Sequence[dict[str, Text]],
    labels: Mapping[str, str],
    keys: Sequence[str],
    width: int,
    minimums: Mapping[str, int],
    *,
    tails: frozenset[str] = frozenset(),
    first: str = "",
) -> dict[str, int]:
    """Shorten the cells of the `minimums` columns, one cell of the column with the most to spare
    at a time (`first` before any other), until the table (each column padded by one cell a side)
    fits `width`. A `tails` column keeps the end of its text (an id's random tail), the others
    their start. Cells are shortened in place; returns every column's width."""
    widths = {k: max([len(labels[k])] + [r[k].cell_len for r in rows]) for k in keys}
    over = sum(w + 2 for w in widths.values()) - width
    while over > 0:
        key = max(
            (k for k in minimums if k in widths and widths[k] > minimums[k]),
            key=lambda k: (k == first, widths[k] - minimums[k]),
            default=None,
        )
        if key is None:
            break
        widths[key] -= 1
        over -= 1
    for r in rows:
        for key in minimums:
            cell = r.get(key)
            if cell is None or key not in widths or cell.cell_len <= widths[key]:
                continue
            if key in tails:
                r[key] = Text(fmt.short_id(cell.plain, widths[key]), style=cell.style)
            else:
                cell.truncate(widths[key], overflow="ellipsis")
    return widths


def set_columns(
    table: DataTable[object], columns: Iterable[tuple[str, str]], widths: Mapping[str, int] | None = None
) -> None:
    """Replace `table`'s columns (and rows) with `columns`: (key, label) pairs, in order; with
    `widths`, each column that fixed width (as wide as now, not the widest cell it ever had)."""
    table.clear(columns=True)
    for key, label in columns:
        table.add_column(label, key=key, width=widths[key] if widths is not None else None)
