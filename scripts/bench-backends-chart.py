#!/usr/bin/env python3
"""Draws the two teaching charts of scripts/bench-backends.sh as SVG.

    scripts/bench-backends-chart.py DIR

reads DIR/pingpong.csv and DIR/wait.csv and writes DIR/pingpong.svg (server
CPU per message against clients, log scale) and DIR/wait.svg (cost of one
wake-up round against idle descriptors), one line per driver, each point the
median of the repetitions. Standard library only.
"""

import csv
import math
import statistics
import sys
from collections import OrderedDict
from html import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def medians(path, x_key, y_key):
    """{driver: [(x, median y)]} in file order of drivers, x ascending."""
    series = OrderedDict()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                x, y = float(row[x_key]), float(row[y_key])
            except (TypeError, ValueError):
                continue
            if math.isnan(y):
                continue
            series.setdefault(row["driver"], {}).setdefault(x, []).append(y)
    return OrderedDict(
        (d, sorted((x, statistics.median(ys)) for x, ys in points.items()))
        for d, points in series.items()
    )


def nice_max(value):
    if value <= 0:
        return 1
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def chart(series, title, x_label, y_label, log_x, path, y_log=False):
    width, height = 760, 440
    left, right, top, bottom = 80, 170, 50, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = sorted({x for pts in series.values() for x, _ in pts})
    ys = [y for pts in series.values() for _, y in pts]
    if not xs or not ys:
        print(f"bench-backends-chart: no data for {path}", file=sys.stderr)
        return

    def fx(x):
        if log_x:
            lo, hi = math.log10(max(xs[0], 1)), math.log10(max(xs[-1], 1))
            return left + (math.log10(max(x, 1)) - lo) / ((hi - lo) or 1) * plot_w
        return left + (x - xs[0]) / ((xs[-1] - xs[0]) or 1) * plot_w

    if y_log:
        y_lo = 10 ** math.floor(math.log10(min(ys)))
        y_hi = 10 ** math.ceil(math.log10(max(ys)))

        def fy(y):
            return top + plot_h - (math.log10(y) - math.log10(y_lo)) / (
                (math.log10(y_hi) - math.log10(y_lo)) or 1) * plot_h
        ticks = [10 ** e for e in range(int(math.log10(y_lo)), int(math.log10(y_hi)) + 1)]
    else:
        y_hi = nice_max(max(ys) * 1.05)

        def fy(y):
            return top + plot_h - y / y_hi * plot_h
        ticks = [y_hi * i / 5 for i in range(6)]

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for t in ticks:
        y = fy(t)
        label = f"{t:,.0f}" if t >= 1 else f"{t:g}"
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for x in xs:
        px = fx(x)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{px:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{x:,.0f}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 16}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(18,{top + plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for i, (driver, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        d = " ".join(f"{'M' if j == 0 else 'L'}{fx(x):.1f},{fy(y):.1f}" for j, (x, y) in enumerate(pts))
        out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{colour}"/>')
        ly = top + 14 + i * 20
        out.append(f'<line x1="{left + plot_w + 14}" x2="{left + plot_w + 38}" y1="{ly - 4}" '
                   f'y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + plot_w + 44}" y="{ly}">{escape(driver)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench-backends-chart.py DIR")
    d = sys.argv[1]
    chart(medians(f"{d}/pingpong.csv", "clients", "server_ns_per_msg"),
          "Ping-pong: server CPU per message", "concurrent clients (log scale)",
          "server CPU ns per message (median)", True, f"{d}/pingpong.svg")
    chart(medians(f"{d}/wait.csv", "idle", "ns_per_round"),
          "One wake-up round against idle registered descriptors",
          "idle registered descriptors (threads: idle threads)",
          "ns per round: write, wait, read, re-arm (log scale)", False, f"{d}/wait.svg",
          y_log=True)


if __name__ == "__main__":
    main()
