"""Charts as server-rendered SVG: no charting library, no script, nothing from a CDN.

Why SVG from the server: the page works with the CSP as it is (no inline script, no eval), a
chart is in the HTML the JSON twin describes (the browser tests read its numbers), there is no
third-party asset to pin and licence, and a tooltip is a native ``<title>`` on each mark.
The palette is Okabe & Ito's, chosen to stay distinct under the common colour-vision
deficiencies; each series also has its label in the legend and in every tooltip, so colour is
never the only cue. The SVG scales to its container (``viewBox``); labels stay legible down to a
narrow window because the chart keeps few ticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

#: Okabe-Ito, black last (used for "others")
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 44


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(top))
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= top:
            return m * step
    return 10 * step


def _time_label(t: float, width: float) -> str:
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%m-%d") if width >= 86400 else moment.strftime("%m-%d %H:%M")


def _frame(y_max: float, fmt: Callable[[float], str], y_label: str, x_label: str,
           buckets: Sequence[float], width: float) -> list[str]:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{W - RIGHT}" y2="{TOP + plot_h}" class="axis"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" class="axis"/>']
    for i in range(5):
        v = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(fmt(v))}</text>')
    n = len(buckets)
    for j in sorted({0, n // 3, 2 * n // 3, n - 1}) if n else []:
        x = LEFT + plot_w * (j + 0.5) / n
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">'
                   f'{escape(_time_label(buckets[j], width))}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{H - 6}" class="label" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" class="label" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    return out


def _svg(kind: str, title: str, body: list[str], legend: list[tuple[str, str]]) -> Markup:
    # a swatch is an SVG rect (a fill attribute): the CSP allows no inline style
    keys = "".join(f'<li><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true"><rect width="10" height="10" '
                   f'fill="{c}"/></svg>{escape(name)}</li>' for name, c in legend)
    return Markup(
        f'<figure class="chart" data-chart="{escape(kind)}"><svg viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">{"".join(body)}</svg>'
        f'<figcaption><ul class="legend">{keys}</ul></figcaption></figure>')


def stacked_bars(kind: str, title: str, buckets: Sequence[float], width: float, series: dict[str, list[float]],
                 *, y_label: str, fmt: Callable[[float], str], x_label: str = "time (UTC)",
                 limit: int = 7) -> Markup:
    """One bar per bucket, stacked by series (the ``limit`` largest, the rest as "others")."""
    names = list(series)
    if len(names) > limit:
        rest = names[limit:]
        others = [sum(series[n][i] for n in rest) for i in range(len(buckets))]
        series = {**{n: series[n] for n in names[:limit]}, f"{len(rest)} others": others}
        names = list(series)
    totals = [sum(series[n][i] for n in names) for i in range(len(buckets))]
    y_max = _nice(max(totals, default=0.0))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    bar = plot_w / max(len(buckets), 1)
    body = _frame(y_max, fmt, y_label, x_label, buckets, width)
    for i, b in enumerate(buckets):
        y = float(TOP + plot_h)
        for k, n in enumerate(names):
            v = series[n][i]
            if v <= 0:
                continue
            h = plot_h * v / y_max
            y -= h
            body.append(f'<rect x="{LEFT + i * bar + bar * 0.1:.1f}" y="{y:.1f}" width="{bar * 0.8:.1f}" '
                        f'height="{h:.1f}" fill="{colour(k)}" data-series="{escape(n)}" data-value="{v}">'
                        f'<title>{escape(n)} · {escape(_time_label(b, width))} · {escape(fmt(v))}</title></rect>')
    return _svg(kind, title, body, [(n, colour(k)) for k, n in enumerate(names)])


def lines(kind: str, title: str, buckets: Sequence[float], width: float, series: dict[str, list[float]],
          *, y_label: str, fmt: Callable[[float], str], x_label: str = "time (UTC)") -> Markup:
    """One line per series, a marker with a tooltip at each bucket."""
    y_max = _nice(max((v for s in series.values() for v in s), default=0.0))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(buckets), 1)
    body = _frame(y_max, fmt, y_label, x_label, buckets, width)
    for k, (name, values) in enumerate(series.items()):
        points = [(LEFT + plot_w * (i + 0.5) / n, TOP + plot_h - plot_h * v / y_max) for i, v in enumerate(values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 3"' if k % 2 else ""
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour(k)}" stroke-width="2"{dash}/>')
        for (x, y), v, b in zip(points, values, buckets, strict=True):
            if v:
                body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour(k)}" data-series="{escape(name)}"'
                            f' data-value="{v}"><title>{escape(name)} · {escape(_time_label(b, width))} · '
                            f'{escape(fmt(v))}</title></circle>')
    return _svg(kind, title, body, [(name, colour(k)) for k, name in enumerate(series)])


def hbars(kind: str, title: str, rows: list[tuple[str, float, float | None]], *, fmt: Callable[[float], str],
          unit: str, first: str, second: str) -> Markup:
    """Horizontal bars per label: ``first`` (billed) and, where known, ``second`` (API-equivalent)."""
    height = TOP + 28 * len(rows) + 30
    top = max((max(a, b or 0.0) for _, a, b in rows), default=0.0)
    x_max = _nice(top)
    left, plot_w = 190, W - 190 - RIGHT
    body = [f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{height - 30}" class="axis"/>']
    for i in range(5):
        x = left + plot_w * i / 4
        body.append(f'<text x="{x:.1f}" y="{height - 14}" class="tick" text-anchor="middle">'
                    f'{escape(fmt(x_max * i / 4))}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 1}" class="label" text-anchor="middle">'
                f'{escape(unit)}</text>')
    for j, (label, a, b) in enumerate(rows):
        y = TOP + 28 * j
        body.append(f'<text x="{left - 6}" y="{y + 16}" class="tick" text-anchor="end">{escape(label[:28])}</text>')
        for k, (v, name) in enumerate(((a, first), (b, second))):
            if v is None:
                continue
            body.append(f'<rect x="{left}" y="{y + 3 + k * 11}" width="{plot_w * v / x_max:.1f}" height="10" '
                        f'fill="{colour(k)}" data-series="{escape(name)}" data-value="{v}"><title>{escape(label)} · '
                        f'{escape(name)} · {escape(fmt(v))}</title></rect>')
    return Markup(str(_svg(kind, title, body, [(first, colour(0)), (second, colour(1))])).replace(
        f'viewBox="0 0 {W} {H}"', f'viewBox="0 0 {W} {height}"'))


STATE_COLOURS = {"reachable": "#009E73", "rate_limited": "#E69F00", "auth_failed": "#D55E00",
                 "unreachable": "#CC79A7", "not_configured": "#999999", "disabled": "#999999"}


def timeline(kind: str, title: str, start: float, end: float, transitions: list[dict[str, object]]) -> Markup:
    """Per provider, the period as a band coloured by health state, one mark per transition."""
    providers = sorted({str(t["provider"]) for t in transitions})
    height = TOP + 26 * len(providers) + 30
    left, plot_w = 130, W - 130 - RIGHT
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return left + plot_w * (min(max(t, start), end) - start) / span

    body: list[str] = []
    for j, pid in enumerate(providers):
        y = TOP + 26 * j
        body.append(f'<text x="{left - 6}" y="{y + 15}" class="tick" text-anchor="end">{escape(pid)}</text>')
        own = [t for t in transitions if t["provider"] == pid]
        for i, t in enumerate(own):
            at = float(t["at"])  # type: ignore[arg-type]
            until = float(own[i + 1]["at"]) if i + 1 < len(own) else end  # type: ignore[arg-type]
            state = str(t["state_to"])
            fill = STATE_COLOURS.get(state, "#000000")
            when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            body.append(f'<rect x="{x(at):.1f}" y="{y + 4}" width="{max(x(until) - x(at), 2):.1f}" height="14" '
                        f'fill="{fill}" data-state="{escape(state)}"><title>{escape(pid)}: '
                        f'{escape(str(t["state_from"] or "unknown"))} → {escape(state)} at {when}</title></rect>')
    for i, moment in enumerate((start, (start + end) / 2, end)):
        anchor = ("start", "middle", "end")[i]
        label = datetime.fromtimestamp(moment, UTC).strftime("%m-%d %H:%M")
        body.append(f'<text x="{x(moment):.1f}" y="{height - 12}" class="tick" text-anchor="{anchor}">{label}</text>')
    legend = [(s.replace("_", " "), c) for s, c in STATE_COLOURS.items() if s != "disabled"]
    return Markup(str(_svg(kind, title, body, legend)).replace(f'viewBox="0 0 {W} {H}"',
                                                                f'viewBox="0 0 {W} {height}"'))
