"""An inline SVG bar chart of finding counts per rule (no script, no external asset)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "bar_chart_svg"]

_LABEL_WIDTH = 230
_BAR_AREA = 420
_COUNT_WIDTH = 70
_BAR_HEIGHT = 18
_GAP = 8
_TOP = 8

# Errors stop a row; warnings only inform: the two are told apart by colour and by the legend.
_FILL = {"error": "#c0392b", "warning": "#d68910"}
_DEFAULT_FILL = "#566573"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    severity: str
    title: str = ""


def bar_chart_svg(bars: Sequence[Bar], *, caption: str) -> str:
    """Horizontal bars, one per rule, longest first; widths proportional to the largest count.

    Labels are escaped: rule codes come from the catalogue, but titles travel through the
    report dict like everything else and are treated as untrusted text.
    """
    ordered = sorted(bars, key=lambda bar: (-bar.count, bar.label))
    largest = max((bar.count for bar in ordered), default=0)
    width = _LABEL_WIDTH + _BAR_AREA + _COUNT_WIDTH
    height = _TOP * 2 + max(len(ordered), 1) * (_BAR_HEIGHT + _GAP)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-label="{escape(caption)}">'
        ),
        f"<title>{escape(caption)}</title>",
    ]
    if not ordered:
        parts.append(f'<text x="0" y="{_TOP + _BAR_HEIGHT - 4}" class="chart-empty">No findings.</text>')
    for index, bar in enumerate(ordered):
        y = _TOP + index * (_BAR_HEIGHT + _GAP)
        length = max(1, round(_BAR_AREA * bar.count / largest)) if bar.count > 0 and largest > 0 else 0
        fill = _FILL.get(bar.severity, _DEFAULT_FILL)
        tooltip = f"{bar.label}: {bar.count}" + (f" ({bar.title})" if bar.title else "")
        parts.append(
            f'<g class="bar" data-rule="{escape(bar.label)}" data-count="{bar.count}">'
            f"<title>{escape(tooltip)}</title>"
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + _BAR_HEIGHT - 4}" text-anchor="end">{escape(bar.label)}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{length}" height="{_BAR_HEIGHT}" fill="{fill}"/>'
            f'<text x="{_LABEL_WIDTH + length + 6}" y="{y + _BAR_HEIGHT - 4}">{bar.count}</text>'
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
