"""Line charts as SVG text, for the benchmark's figures (standard library only).

    line_chart(title, xlabel, ylabel, [(name, [(x, y), ...]), ...], xlog=True, note=None)

One line per series with a marker at each point and its value beside it, axes with
ticks and labels (decades on a logarithmic x axis, round steps on a y axis starting
at 0), a legend, and an optional note under the chart. The output depends only on
the data, so a chart made again from the same figures is the same file.
"""

import math
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
DASHES = ["", "6,4", "2,3", "8,3,2,3"]
W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 150, 40, 70


def nice_step(span, ticks=5):
    raw = span / ticks if span > 0 else 1
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def label(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2f}".rstrip("0").rstrip(".")


def value(v):
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def line_chart(title, xlabel, ylabel, series, xlog=True, note=None):
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    if not xs:
        raise ValueError("no points")
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    if xlog:
        lo = 10 ** math.floor(math.log10(min(xs)))
        hi = 10 ** math.ceil(math.log10(max(xs)))
        if hi == lo:
            hi = lo * 10
        xticks = []
        t = lo
        while t <= hi * 1.0001:
            xticks.append(t)
            t *= 10

        def fx(x):
            return LEFT + pw * (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    else:
        lo, hi = 0, max(xs)
        step = nice_step(hi)
        hi = math.ceil(hi / step) * step
        xticks = [i * step for i in range(int(round(hi / step)) + 1)]

        def fx(x):
            return LEFT + pw * (x - lo) / (hi - lo)
    ymax = max(ys) * 1.15 if max(ys) > 0 else 1
    ystep = nice_step(ymax)
    ytop = math.ceil(ymax / ystep) * ystep
    yticks = [i * ystep for i in range(int(round(ytop / ystep)) + 1)]

    def fy(y):
        return TOP + ph * (1 - y / ytop)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2:.1f}" y="22" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{escape(title)}</text>']
    # Grid and ticks.
    for t in yticks:
        y = fy(t)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" '
                   f'stroke="#e5e5e5"/>')
        out.append(f'<line x1="{LEFT - 5}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="black"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{label(t)}</text>')
    for t in xticks:
        x = fx(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#e5e5e5"/>')
        out.append(f'<line x1="{x:.1f}" y1="{TOP + ph}" x2="{x:.1f}" y2="{TOP + ph + 5}" '
                   f'stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 19}" text-anchor="middle">{label(t)}</text>')
    # Axes and their labels.
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="black"/>')
    scale = " (logarithmic)" if xlog else ""
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{TOP + ph + 40}" text-anchor="middle">'
               f'{escape(xlabel + scale)}</text>')
    out.append(f'<text transform="translate(20,{TOP + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    # Lines, markers, values, legend.
    for i, (name, pts) in enumerate(series):
        color, dash = COLORS[i % len(COLORS)], DASHES[i % len(DASHES)]
        pts = sorted(pts)
        path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in pts)
        style = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                   f'stroke-width="2"{style}/>')
        for x, y in pts:
            out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3.5" fill="{color}"/>')
            dy = -8 if i % 2 == 0 else 16
            out.append(f'<text x="{fx(x):.1f}" y="{fy(y) + dy:.1f}" text-anchor="middle" '
                       f'font-size="10" fill="{color}">{value(y)}</text>')
        ly = TOP + 10 + 20 * i
        lx = LEFT + pw + 15
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 25}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"{style}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{escape(name)}</text>')
    if note:
        out.append(f'<text x="{LEFT}" y="{H - 10}" font-size="10" fill="#555">'
                   f'{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
