"""Server-side SVG charts for the dashboard: no JavaScript library, nothing from a CDN."""

from markupsafe import escape

STATE_COLOURS = {
    "PENDING": "#9e9e9e",
    "STARTED": "#1e88e5",
    "RETRY": "#fb8c00",
    "SUCCESS": "#43a047",
    "FAILURE": "#e53935",
    "REVOKED": "#6d4c41",
}


def axis_max(value):
    """A round axis maximum at or above ``value``: 1, 2, 5, 10, 20, 50..."""
    top = 1
    while top < value:
        digits = str(top)[0]
        top = top * 2 if digits == "1" else (top * 5 // 2 if digits == "2" else top * 2)
    return top


def state_bars(last_hour, last_day, width=560, height=220):
    """Grouped bars: for each state, the last hour and the last 24 hours side by side."""
    states = list(last_day)
    top = axis_max(max([1, *last_hour.values(), *last_day.values()]))
    left, bottom, right, top_pad = 40, 40, 10, 24
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    group_w = plot_w / max(1, len(states))
    bar_w = group_w * 0.35

    def y(value):
        return top_pad + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="state-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="各状态任务数">',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{y(top) + 4:.1f}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{left - 4}" y="{y(0) + 4:.1f}" text-anchor="end" font-size="11">0</text>',
    ]
    for index, state in enumerate(states):
        colour = STATE_COLOURS.get(state, "#607d8b")
        x0 = left + index * group_w + group_w * 0.12
        for offset, (label, value, opacity) in enumerate(
            (
                ("近 1 小时", last_hour.get(state, 0), "1"),
                ("近 24 小时", last_day.get(state, 0), "0.45"),
            )
        ):
            x = x0 + offset * (bar_w + 2)
            parts.append(
                f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{bar_w:.1f}" '
                f'height="{max(0.0, y(0) - y(value)):.1f}" fill="{colour}" fill-opacity="{opacity}" '
                f'data-state="{escape(state)}" data-window="{"hour" if offset == 0 else "day"}" '
                f'data-count="{int(value)}"><title>{escape(state)} {label}: {int(value)}</title></rect>'
            )
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y(value) - 3:.1f}" text-anchor="middle" '
                f'font-size="10">{int(value)}</text>'
            )
        parts.append(
            f'<text x="{left + index * group_w + group_w / 2:.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle" font-size="11">{escape(state)}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="5" width="10" height="10" fill="#607d8b"/>'
        f'<text x="{left + 14}" y="14" font-size="11">近 1 小时</text>'
        f'<rect x="{left + 90}" y="5" width="10" height="10" fill="#607d8b" fill-opacity="0.45"/>'
        f'<text x="{left + 104}" y="14" font-size="11">近 24 小时</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def throughput_bars(points, width=560, height=120):
    """One bar per minute (oldest on the left), the busiest minute labelled."""
    counts = [point["count"] for point in points]
    top = axis_max(max([1, *counts]))
    left, bottom, top_pad = 40, 20, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    bar_w = plot_w / max(1, len(counts))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="throughput-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="每分钟完成的任务数">',
        f'<text x="{left - 4}" y="{top_pad + 4}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{left - 4}" y="{top_pad + plot_h + 4}" text-anchor="end" font-size="11">0</text>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#999"/>',
    ]
    for index, point in enumerate(points):
        value = point["count"]
        bar_h = plot_h * value / top
        parts.append(
            f'<rect x="{left + index * bar_w:.1f}" y="{top_pad + plot_h - bar_h:.1f}" '
            f'width="{max(1.0, bar_w - 1):.1f}" height="{bar_h:.1f}" fill="#1e88e5">'
            f"<title>{escape(point['minute'] or '')}: {int(value)}</title></rect>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="10">-{len(points)} 分钟</text>'
        f'<text x="{width - 10}" y="{height - 4}" font-size="10" text-anchor="end">现在</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
