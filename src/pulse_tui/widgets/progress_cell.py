"""Progress bar cell: an eighth-block bar followed by ``n/total`` (or a percentage when narrow)."""

from __future__ import annotations

from rich.text import Text

from pulse_tui.widgets import fmt

_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A bar of ``width`` cells filled to ``fraction`` with eighth-block precision."""
    if width <= 0:
        return ""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, rem = divmod(eighths, 8)
    s = "█" * full
    if full < width:
        s += _EIGHTHS[rem] if rem else ""
    return s.ljust(width, " ")


def progress_text(
    current: int,
    total: int,
    width: int,
    *,
    status: str = "running",
    bar_style: str = "#7aa2f7",
    track_style: str = "on #24283b",
    done_style: str = "#9ece6a",
) -> Text:
    """Render progress into exactly ``width`` cells.

    No total → a dash (or the count alone when the plugin only reports ``current``).
    """
    text = Text(no_wrap=True, overflow="crop")
    if width <= 0:
        return text
    if total <= 0:
        label = str(current) if current else "—"
        text.append(label.rjust(width)[:width], style="dim")
        return text
    frac = current / total if total else 0.0
    label = f"{current}/{total}"
    if len(label) + 4 > width:
        label = f"{int(frac * 100)}%"
    bar_width = max(0, width - len(label) - 1)
    style = done_style if current >= total or status == "completed" else bar_style
    if status == "failed":
        style = fmt.C("#f7768e")
    if bar_width >= 3:
        text.append(bar(frac, bar_width), style=fmt.C(f"{style} {track_style}"))
        text.append(" ")
    else:
        bar_width = -1
    text.append(label.rjust(width - bar_width - 1 if bar_width >= 0 else width), style="")
    text.truncate(width, pad=True)
    return text
