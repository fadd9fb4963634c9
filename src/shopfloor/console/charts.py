"""Small charts drawn on the server as SVG shapes (the template writes them out): no script,
no library, and nothing the page's Content-Security-Policy would have to allow."""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.api.timefmt import iso

WIDTH = 180
HEIGHT = 40
GAP = 1


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the tooltip: the minute and its value


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: str  # the largest value, for the axis note
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(values: list[int | None], first_minute: int, unit: str) -> Chart:
    """One bar per minute, scaled to the largest value (a minute with 0 or None has none)."""
    top = max((v for v in values if v is not None), default=0)
    slot = WIDTH / max(1, len(values))
    bars = []
    for i, value in enumerate(values):
        if not value:  # no claim that minute (or a wait of 0): nothing to draw
            continue
        height = max(1.0, HEIGHT * value / top)
        at = (iso((first_minute + i) * 60_000) or "")[11:16]  # HH:MM (UTC)
        bars.append(
            Bar(
                x=round(i * slot, 2),
                y=round(HEIGHT - height, 2),
                width=round(slot - GAP, 2),
                height=round(height, 2),
                label=f"{at} UTC: {fmt_value(value, unit)}",
            )
        )
    return Chart(bars, fmt_value(top, unit))


def fmt_value(value: int, unit: str) -> str:
    return seconds(value) if unit == "ms" else f"{value}{unit}"


def seconds(ms: int | None) -> str:
    """A wait for people: 120ms, 4.2s, 3m10s."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms // 60_000}m{(ms % 60_000) // 1000:02d}s"
