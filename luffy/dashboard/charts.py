"""Server-side SVG charts for the dashboard: no JavaScript library, nothing from a CDN.

Text is drawn at 14 units and the page keeps a chart at least 480 px wide (dashboard.css),
so no label is ever smaller than 12 px on screen; the y axis has labelled steps.
"""

from markupsafe import escape

from luffy.dashboard.task_words import STATE_LABELS

STATE_COLOURS = {
    "PENDING": "#757575",
    "STARTED": "#1565c0",
    "RETRY": "#e65100",
    "SUCCESS": "#2e7d32",
    "FAILURE": "#c62828",
    "REVOKED": "#5d4037",
}
FONT = 14


def axis_max(value):
    """A round axis maximum at or above ``value``: 1, 2, 5, 10, 20, 50..."""
    top = 1
    while top < value:
        digits = str(top)[0]
        top = top * 2 if digits == "1" else (top * 5 // 2 if digits == "2" else top * 2)
    return top


def axis_steps(top):
    """The labelled values of a y axis up to ``top``: every unit up to 5, else five steps."""
    step = 1 if top <= 5 else top // 5
    return list(range(0, top + 1, step))


def y_axis(left, right_x, y, top):
    """Grid lines and labels of the y axis, ``y(value)`` mapping a value to its height."""
    parts = []
    for value in axis_steps(top):
        height = y(value)
        colour = "#666" if value == 0 else "#ddd"
        parts.append(
            f'<line x1="{left}" y1="{height:.1f}" x2="{right_x}" y2="{height:.1f}" '
            f'stroke="{colour}"/>'
            f'<text x="{left - 6}" y="{height + 5:.1f}" text-anchor="end" '
            f'font-size="{FONT}">{value}</text>'
        )
    return parts


def state_bars(last_hour, last_day, width=560, height=250):
    """Grouped bars: for each state, the last hour and the last 24 hours side by side."""
    states = list(last_day)
    top = axis_max(max([1, *last_hour.values(), *last_day.values()]))
    left, bottom, right, top_pad = 44, 40, 10, 34
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    group_w = plot_w / max(1, len(states))
    bar_w = group_w * 0.35

    def y(value):
        return top_pad + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="state-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="各状态任务数">',
        *y_axis(left, width - right, y, top),
    ]
    for index, state in enumerate(states):
        colour = STATE_COLOURS.get(state, "#546e7a")
        label = STATE_LABELS.get(state, state)
        x0 = left + index * group_w + group_w * 0.12
        for offset, (window, value, opacity) in enumerate(
            (
                ("近 1 小时", last_hour.get(state, 0), "1"),
                ("近 24 小时", last_day.get(state, 0), "0.45"),
            )
        ):
            x = x0 + offset * (bar_w + 2)
            parts.append(
                f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{bar_w:.1f}" '
                f'height="{max(0.0, y(0) - y(value)):.1f}" fill="{colour}" '
                f'fill-opacity="{opacity}" data-state="{escape(state)}" '
                f'data-window="{"hour" if offset == 0 else "day"}" data-count="{int(value)}">'
                f"<title>{escape(label)} {window}：{int(value)}</title></rect>"
            )
        parts.append(
            f'<text x="{left + index * group_w + group_w / 2:.1f}" y="{height - bottom + 20}" '
            f'text-anchor="middle" font-size="{FONT}">{escape(label)}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="6" width="14" height="14" fill="#546e7a"/>'
        f'<text x="{left + 20}" y="18" font-size="{FONT}">近 1 小时</text>'
        f'<rect x="{left + 110}" y="6" width="14" height="14" fill="#546e7a" fill-opacity="0.45"/>'
        f'<text x="{left + 130}" y="18" font-size="{FONT}">近 24 小时</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def throughput_bars(points, width=560, height=160):
    """One bar per minute (oldest on the left), with a stepped y axis."""
    counts = [point["count"] for point in points]
    top = axis_max(max([1, *counts]))
    left, bottom, top_pad = 44, 26, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    bar_w = plot_w / max(1, len(counts))

    def y(value):
        return top_pad + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="throughput-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="每分钟完成的任务数">',
        *y_axis(left, width - 10, y, top),
    ]
    for index, point in enumerate(points):
        value = point["count"]
        parts.append(
            f'<rect x="{left + index * bar_w:.1f}" y="{y(value):.1f}" '
            f'width="{max(1.0, bar_w - 1):.1f}" height="{y(0) - y(value):.1f}" fill="#1565c0">'
            f"<title>{escape(point['minute'] or '')}：{int(value)}</title></rect>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}" font-size="{FONT}">{len(points)} 分钟前</text>'
        f'<text x="{width - 10}" y="{height - 6}" font-size="{FONT}" text-anchor="end">现在</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
