"""Inline SVG charts for the HTML report, written by hand so the page needs no
JavaScript, no plotting library and no network: horizontal bars with
interval whiskers, line charts, and overlaid histograms. Every label and title is
cleaned of control characters and escaped here, so the markup can go into a page as is."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from embed_udfs.terminal import clean

# colour-blind-safe (Okabe-Ito), in the order series are drawn
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\""


def escape(text: object) -> str:
    """Text for SVG markup: escape sequences and control characters removed, then escaped."""
    return html.escape(clean(text, max_width=None))


@dataclass(frozen=True)
class Interval:
    """One bar or point: a value with an optional interval around it."""

    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Series:
    """A named series: for bar charts one value per category, for line charts (x, y) points."""

    name: str
    values: Sequence[Interval | None]
    colour: str | None = None  # default: the palette, in series order
    dashed: bool = False  # line charts: a reference line (e.g. chance), drawn without points


def _colour(series: Sequence[Series], i: int) -> str:
    return series[i].colour or PALETTE[i % len(PALETTE)]


def nice_upper(value: float, cap: float = 1.0) -> float:
    """The smallest round axis end (..., 0.02, 0.025, 0.05, 0.1, ...) at or above value, <= cap."""
    if value <= 0:
        return cap
    magnitude = 10 ** math.floor(math.log10(value))
    steps = (1, 2, 2.5, 5, 10)
    return min(next(m * magnitude for m in steps if m * magnitude >= value - 1e-12), cap)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def _text(
    x: float,
    y: float,
    label: str,
    *,
    anchor: str = "start",
    size: int = 12,
    weight: str = "normal",
    fill: str = "#222",
    extra: str = "",
) -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'font-weight="{weight}" fill="{fill}" {extra}>{escape(label)}</text>'
    )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    span = high - low or 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, tick = [], first
    while tick <= high + 1e-9:
        ticks.append(round(tick, 10))
        tick += step
    return ticks


def _fmt_tick(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-9 else "0"


def _legend(
    series: Sequence[Series], x: float, y: float, *, kind: str = "box", wrap: float = 640
) -> tuple[str, float]:
    """Legend entries laid out left to right, wrapping at `wrap` px; returns (svg, height)."""
    parts, cx, cy = [], x, y
    for i, item in enumerate(series):
        width = 22 + 7 * len(item.name)
        if cx + width > x + wrap and cx > x:
            cx, cy = x, cy + 18
        colour = _colour(series, i)
        if kind == "line":
            dash = ' stroke-dasharray="5 3"' if item.dashed else ""
            parts.append(
                f'<line x1="{_n(cx)}" y1="{_n(cy - 4)}" x2="{_n(cx + 14)}" y2="{_n(cy - 4)}" '
                f'stroke="{colour}" stroke-width="2.5"{dash}/>'
            )
        else:
            parts.append(
                f'<rect x="{_n(cx)}" y="{_n(cy - 10)}" width="12" height="12" fill="{colour}" '
                'fill-opacity="0.85"/>'
            )
        parts.append(_text(cx + 18, cy, item.name, size=12))
        cx += width + 14
    return "".join(parts), cy - y + 18


def _frame(width: float, height: float, title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_n(width)}" '
        f'height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" {FONT}>'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def interval_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    domain: tuple[float, float] | None = None,
    width: int = 560,
    label_chars: int = 30,
) -> str:
    """Horizontal grouped bars, one group per category, one bar per series, with whiskers.

    A bar starts at 0 (or the domain's edge), so negative values draw leftwards.
    """
    values = [iv for s in series for iv in s.values if iv is not None]
    if domain is None:
        low = min([0.0, *(iv.low if iv.low is not None else iv.value for iv in values)])
        high = max([0.0, *(iv.high if iv.high is not None else iv.value for iv in values)])
        domain = (low, high if high > low else low + 1.0)
    d_low, d_high = domain
    label_width = 16 + 7 * min(max((len(c) for c in categories), default=4), label_chars)
    left, right, top = label_width, 24, 34
    bar, gap = 8, 10
    group = bar * len(series) + gap
    plot_height = max(group * len(categories), 40)
    legend, legend_height = _legend(series, left, top + plot_height + 46, wrap=width - left - 20)
    height = top + plot_height + 46 + legend_height
    plot_width = width - left - right

    def x_of(value: float) -> float:
        clipped = min(max(value, d_low), d_high)
        return left + (clipped - d_low) / (d_high - d_low) * plot_width

    parts = [_text(8, 18, title, size=14, weight="600")]
    for tick in _ticks(d_low, d_high):
        x = x_of(tick)
        parts.append(
            f'<line x1="{_n(x)}" y1="{top}" x2="{_n(x)}" y2="{_n(top + plot_height)}" '
            'stroke="#e3e3e3"/>'
        )
        parts.append(
            _text(x, top + plot_height + 16, _fmt_tick(tick), anchor="middle", size=11, fill="#555")
        )
    parts.append(
        _text(
            left + plot_width / 2,
            top + plot_height + 34,
            x_label,
            anchor="middle",
            size=12,
            fill="#333",
        )
    )
    zero = x_of(0.0 if d_low <= 0.0 <= d_high else d_low)
    for c, category in enumerate(categories):
        y0 = top + c * group + gap / 2
        short = category if len(category) <= label_chars else category[: label_chars - 1] + "\u2026"
        weight = "600" if category == "ALL" else "normal"
        label_y = y0 + bar * len(series) / 2 + 4
        parts.append(_text(left - 8, label_y, short, anchor="end", weight=weight))
        for s, item in enumerate(series):
            iv = item.values[c]
            if iv is None:
                continue
            y = y0 + s * bar
            x = x_of(iv.value)
            colour = _colour(series, s)
            parts.append(
                f'<rect x="{_n(min(x, zero))}" y="{_n(y)}" width="{_n(max(abs(x - zero), 0.8))}" '
                f'height="{bar - 1}" fill="{colour}" fill-opacity="0.85">'
                f"<title>{escape(category)} · {escape(item.name)}: {iv.value:.3f}"
                + (
                    f" [{iv.low:.3f}, {iv.high:.3f}]"
                    if iv.low is not None and iv.high is not None
                    else ""
                )
                + "</title></rect>"
            )
            if iv.low is not None and iv.high is not None:
                xl, xh, ym = x_of(iv.low), x_of(iv.high), y + (bar - 1) / 2
                parts.append(
                    f'<path d="M{_n(xl)} {_n(ym)}H{_n(xh)}M{_n(xl)} {_n(ym - 3)}V{_n(ym + 3)}'
                    f'M{_n(xh)} {_n(ym - 3)}V{_n(ym + 3)}" '
                    'stroke="#222" stroke-width="1.2" fill="none"/>'
                )
    parts.append(
        f'<line x1="{_n(zero)}" y1="{top}" x2="{_n(zero)}" y2="{_n(top + plot_height)}" '
        'stroke="#888"/>'
    )
    parts.append(legend)
    return _frame(width, height, title, "".join(parts))


def line_chart(
    series: Sequence[Series],
    x_values: Sequence[float],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_tick_labels: Sequence[str] | None = None,
    log_x: bool = False,
    domain: tuple[float, float] | None = None,
    width: int = 560,
    height: int = 300,
) -> str:
    """Lines over shared x values, with a point and a whisker at each x that has an interval."""
    left, right, top, bottom = 56, 20, 34, 48
    legend, legend_height = _legend(series, left, height + 4, kind="line", wrap=width - left - 20)
    total_height = height + legend_height + 6
    plot_width, plot_height = width - left - right, height - top - bottom
    points = [iv for s in series for iv in s.values if iv is not None]
    if domain is None:
        low = min([iv.low if iv.low is not None else iv.value for iv in points], default=0.0)
        high = max([iv.high if iv.high is not None else iv.value for iv in points], default=1.0)
        pad = (high - low) * 0.08 or 0.05
        domain = (low - pad, high + pad)
    y_low, y_high = domain

    def xs(value: float) -> float:
        return math.log10(value) if log_x else value

    x_min, x_max = xs(min(x_values)), xs(max(x_values))
    x_span = (x_max - x_min) or 1.0

    def x_of(value: float) -> float:
        if x_max == x_min:  # one x value: in the middle
            return left + plot_width / 2
        return left + 12 + (xs(value) - x_min) / x_span * (plot_width - 24)

    def y_of(value: float) -> float:
        return top + plot_height - (value - y_low) / (y_high - y_low) * plot_height

    parts = [_text(8, 18, title, size=14, weight="600")]
    for tick in _ticks(y_low, y_high):
        y = y_of(tick)
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{_n(left + plot_width)}" y2="{_n(y)}" '
            'stroke="#e3e3e3"/>'
        )
        parts.append(_text(left - 6, y + 4, _fmt_tick(tick), anchor="end", size=11, fill="#555"))
    labels = x_tick_labels or [_fmt_tick(x) for x in x_values]
    for x, label in zip(x_values, labels, strict=True):
        parts.append(
            _text(x_of(x), top + plot_height + 16, label, anchor="middle", size=11, fill="#555")
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{_n(plot_width)}" height="{_n(plot_height)}" '
        'fill="none" stroke="#bbb"/>'
    )
    parts.append(
        _text(
            left + plot_width / 2,
            top + plot_height + 36,
            x_label,
            anchor="middle",
            size=12,
            fill="#333",
        )
    )
    parts.append(
        _text(
            14,
            top + plot_height / 2,
            y_label,
            anchor="middle",
            size=12,
            fill="#333",
            extra=f'transform="rotate(-90 14 {_n(top + plot_height / 2)})"',
        )
    )
    for s, item in enumerate(series):
        colour = _colour(series, s)
        coords = [
            (x_of(x), iv) for x, iv in zip(x_values, item.values, strict=True) if iv is not None
        ]
        if len(coords) > 1:
            path = " ".join(f"{_n(x)},{_n(y_of(iv.value))}" for x, iv in coords)
            dash = ' stroke-dasharray="5 3"' if item.dashed else ""
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="{1.5 if item.dashed else 2.2}"{dash}/>'
            )
        if item.dashed:
            continue
        for x, iv in coords:
            if iv.low is not None and iv.high is not None:
                parts.append(
                    f'<path d="M{_n(x)} {_n(y_of(iv.low))}V{_n(y_of(iv.high))}" stroke="{colour}" '
                    'stroke-width="1.2" stroke-opacity="0.7"/>'
                )
            parts.append(
                f'<circle cx="{_n(x)}" cy="{_n(y_of(iv.value))}" r="3.2" fill="{colour}">'
                f"<title>{escape(item.name)}: {iv.value:.3f}</title></circle>"
            )
    parts.append(legend)
    return _frame(width, total_height, title, "".join(parts))


def histogram(
    edges: Sequence[float],
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 260,
) -> str:
    """Overlaid histograms on shared bin edges (len(edges) = bins + 1): each series a step
    outline over a light fill, so overlapping distributions stay apart.

    The x range is cropped to the bins that hold something, plus one bin either side.
    """
    used = [
        b
        for b in range(len(edges) - 1)
        if any(iv is not None and iv.value > 0 for iv in (s.values[b] for s in series))
    ]
    first = max(min(used, default=0) - 1, 0)
    last = min(max(used, default=len(edges) - 2) + 1, len(edges) - 2)
    x_low, x_high = edges[first], edges[last + 1]
    left, right, top, bottom = 56, 20, 34, 48
    legend, legend_height = _legend(series, left, height + 4, wrap=width - left - 20)
    total_height = height + legend_height + 6
    plot_width, plot_height = width - left - right, height - top - bottom
    y_high = max([iv.value for s in series for iv in s.values if iv is not None], default=1.0)
    y_high = y_high * 1.08 or 1.0

    def x_of(value: float) -> float:
        return left + (value - x_low) / (x_high - x_low) * plot_width

    def y_of(value: float) -> float:
        return top + plot_height - value / y_high * plot_height

    parts = [_text(8, 18, title, size=14, weight="600")]
    for tick in _ticks(0.0, y_high, 4):
        y = y_of(tick)
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{_n(left + plot_width)}" y2="{_n(y)}" '
            'stroke="#e3e3e3"/>'
        )
        parts.append(_text(left - 6, y + 4, _fmt_tick(tick), anchor="end", size=11, fill="#555"))
    for tick in _ticks(x_low, x_high, 6):
        parts.append(
            _text(
                x_of(tick),
                top + plot_height + 16,
                _fmt_tick(tick),
                anchor="middle",
                size=11,
                fill="#555",
            )
        )
    for s, item in enumerate(series):
        colour = _colour(series, s)
        heights = [iv.value if iv is not None else 0.0 for iv in item.values[first : last + 1]]
        # one closed step path per series: up and down each bin, back along the baseline
        steps = [f"M{_n(x_of(edges[first]))} {_n(y_of(0))}"]
        for offset, value in enumerate(heights):
            b = first + offset
            steps.append(f"V{_n(y_of(value))}H{_n(x_of(edges[b + 1]))}")
        steps.append(f"V{_n(y_of(0))}Z")
        parts.append(
            f'<path d="{"".join(steps)}" fill="{colour}" fill-opacity="0.18" stroke="{colour}" '
            f'stroke-width="2" stroke-linejoin="miter"><title>{escape(item.name)}</title></path>'
        )
        for offset, value in enumerate(heights):
            b = first + offset
            if value > 0:  # invisible hit areas, so hovering a bin names its share
                parts.append(
                    f'<rect x="{_n(x_of(edges[b]))}" y="{_n(y_of(value))}" '
                    f'width="{_n(x_of(edges[b + 1]) - x_of(edges[b]))}" '
                    f'height="{_n(y_of(0) - y_of(value))}" fill="{colour}" fill-opacity="0">'
                    f"<title>{escape(item.name)} [{edges[b]:.2f}, {edges[b + 1]:.2f}): "
                    f"{value:.4f}</title></rect>"
                )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{_n(plot_width)}" height="{_n(plot_height)}" '
        'fill="none" stroke="#bbb"/>'
    )
    parts.append(
        _text(
            left + plot_width / 2,
            top + plot_height + 36,
            x_label,
            anchor="middle",
            size=12,
            fill="#333",
        )
    )
    parts.append(
        _text(
            14,
            top + plot_height / 2,
            y_label,
            anchor="middle",
            size=12,
            fill="#333",
            extra=f'transform="rotate(-90 14 {_n(top + plot_height / 2)})"',
        )
    )
    parts.append(legend)
    return _frame(width, total_height, title, "".join(parts))


def _heat_colour(share: float) -> str:
    """White (0) to deep blue (1), in one hue so that it reads in grey too."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (round(255 + (end - 255) * share) for end in (8, 69, 148))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Mapping[tuple[str, str], float],
    *,
    title: str,
    x_label: str,
    y_label: str,
    label_chars: int = 24,
    cell: int = 26,
) -> str:
    """A grid of shares in [0, 1], one row per `rows` item and one column per `columns`
    item, darker for larger; a missing (row, column) is 0. Columns are labelled by their
    position in `rows` when the two are the same list (a confusion matrix), so long names
    are written once."""

    def short(label: str) -> str:
        return label if len(label) <= label_chars else label[: label_chars - 1] + "\u2026"

    label_width = 16 + 7 * min(max((len(r) for r in rows), default=4), label_chars)
    left, top = label_width + 34, 64
    width = max(left + cell * len(columns) + 24, 320)
    height = top + cell * len(rows) + 40
    parts = [_text(8, 18, title, size=14, weight="600")]
    parts.append(_text(left, 40, x_label, size=12, fill="#333"))
    parts.append(
        _text(
            12,
            top + cell * len(rows) / 2,
            y_label,
            anchor="middle",
            size=12,
            fill="#333",
            extra=f'transform="rotate(-90 12 {_n(top + cell * len(rows) / 2)})"',
        )
    )
    index = {name: i + 1 for i, name in enumerate(rows)}
    for c, column in enumerate(columns):
        x = left + c * cell + cell / 2
        tag = str(index[column]) if column in index else short(column)
        parts.append(_text(x, top - 6, tag, anchor="middle", size=11, fill="#555"))
    for r, row in enumerate(rows):
        y = top + r * cell
        parts.append(
            _text(left - 6, y + cell / 2 + 4, f"{short(row)} ({index[row]})", anchor="end")
        )
        for c, column in enumerate(columns):
            share = values.get((row, column), 0.0)
            x = left + c * cell
            stroke = ' stroke="#222" stroke-width="1.2"' if row == column else ""
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(y)}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{_heat_colour(share)}"{stroke}>'
                f"<title>{escape(row)} → {escape(column)}: {share:.1%}</title></rect>"
            )
            if share >= 0.005:
                fill = "#fff" if share > 0.55 else "#222"
                parts.append(
                    _text(
                        x + (cell - 1) / 2,
                        y + cell / 2 + 3,
                        f"{share * 100:.0f}",
                        anchor="middle",
                        size=9,
                        fill=fill,
                    )
                )
    parts.append(
        _text(
            left,
            top + cell * len(rows) + 20,
            "cell = % of the row's queries; outlined: the section itself",
            size=11,
            fill="#555",
        )
    )
    return _frame(width, height, title, "".join(parts))
