#!/usr/bin/env python3
"""Turns bench-results/<run>/results.csv into results.md and chart.svg.

Usage: scripts/bench-chart.py bench-results/<run>

results.csv has one row per repetition of a cell (written by bench.sh);
this script groups the repetitions of each cell and reports the median with
the min-max range, so one noisy repetition cannot pass for the result.

The one idea of the chart: echo throughput and the server's CPU time per
message, per backend, without and with 10,000 idle connections held open.
poll(2) looks at every registered descriptor on every wait, so idle
connections cost it on every message; epoll(7) only reports what is ready,
so they cost it (almost) nothing. Standard library only.
"""

import csv
import math
import os
import platform
import statistics
import sys
from collections import OrderedDict
from html import escape

CELL = ("kind", "variant", "backend", "clients", "transport", "idle")


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def extra(row, key):
    for pair in (row.get("extra") or "").split(";"):
        k, _, v = pair.partition("=")
        if k == key:
            return v
    return ""


def load(path):
    """Cells in first-seen order: key -> list of rows (one per repetition)."""
    cells = OrderedDict()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            cells.setdefault(tuple(row[k] for k in CELL), []).append(row)
    return cells


def stats(rows, column):
    values = [v for v in (number(r.get(column)) for r in rows) if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def errors(rows):
    """Errors the bench counted, plus runs that failed without counting any
    (a crash, a timeout, a refused flag)."""
    total = 0
    for r in rows:
        counted = int(number(r["errors"]) or 0)
        failed_silently = not counted and r["exit"] not in ("0", "")
        total += counted + (1 if failed_silently else 0)
    return total


def fmt(value, digits=0):
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def spread(s, digits=0):
    if s is None:
        return "–"
    median, lo, hi = s
    if lo == hi:
        return fmt(median, digits)
    return f"{fmt(median, digits)} ({fmt(lo, digits)}–{fmt(hi, digits)})"


def markdown(cells, reps):
    out = []
    host = f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    out.append("# Portcullis benchmark results\n")
    out.append(
        f"{host}; server pinned to CPU 0, load generator to CPU 1; "
        f"{reps} repetition(s) per cell, median (min–max).\n"
    )

    out.append("## Echo\n")
    out.append(
        "32-byte messages. *cppserver-v2*: 1,000 messages in flight per "
        "client, one new message per echo (CppServer's current client). "
        "*cppserver-v1*: one message per write, never waiting for echoes "
        "(CppServer's original client). "
        "Server CPU ns/msg is the server's own CPU time divided by messages "
        "echoed: the figure that compares backends when the load generator "
        "saturates its core.\n"
    )
    out.append(
        "Rows are grouped so the backends of one cell stand side by side; "
        "*vs best* is the server's ns/msg relative to the first backend "
        "listed (the platform's best), from the same run.\n"
    )
    out.append(
        "| mode | clients | transport | idle conns | backend "
        "| msgs/s median (min–max) | server CPU ns/msg median | vs best | errors |"
    )
    out.append("|---|---:|---|---:|---|---:|---:|---:|---:|")
    echo = [(k, v) for k, v in cells.items() if k[0] == "echo"]
    backend_order = list(OrderedDict.fromkeys(k[2] for k, _ in echo))
    echo.sort(
        key=lambda kv: (
            kv[0][1] != "cppserver-v2",
            number(kv[0][3]) or 0,
            kv[0][4],
            number(kv[0][5]) or 0,
            backend_order.index(kv[0][2]),
        )
    )
    reference = {}
    for key, rows in echo:
        _, variant, backend, clients, transport, idle = key
        ns = stats(rows, "server_ns_per_unit")
        ns = ns[0] if ns else None
        group = (variant, clients, transport, idle)
        if group not in reference and ns:
            reference[group] = ns
        ratio = f"{ns / reference[group]:.2f}×" if ns and group in reference else "–"
        out.append(
            f"| {variant} | {clients} | {transport} | {fmt(number(idle))} | {backend} "
            f"| {spread(stats(rows, 'msgs_per_s'))} | {fmt(ns)} | {ratio} "
            f"| {errors(rows)} |"
        )

    latency = [(k, v) for k, v in cells.items() if k[0] == "latency"]
    if latency:
        out.append("\n## Round-trip latency\n")
        out.append(
            "Ping-pong mode: each client keeps one 32-byte message in flight. "
            "Percentiles over every round trip of the median repetition's run.\n"
        )
        out.append(
            "| clients | backend | round trips/s median (min–max) "
            "| p50 µs | p90 µs | p99 µs | max µs | errors |"
        )
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
        latency.sort(key=lambda kv: (number(kv[0][3]) or 0, backend_order.index(kv[0][2])
                                     if kv[0][2] in backend_order else 0))
        for key, rows in latency:
            ordered = sorted(rows, key=lambda r: number(r["msgs_per_s"]) or 0)
            middle = ordered[len(ordered) // 2]
            out.append(
                f"| {key[3]} | {key[2]} | {spread(stats(rows, 'msgs_per_s'))} "
                + "".join(f"| {extra(middle, k) or '–'} " for k in ("p50_us", "p90_us", "p99_us", "max_us"))
                + f"| {errors(rows)} |"
            )

    out.append("\n## Multicast\n")
    out.append(
        "| backend | receivers | msgs/s median (min–max) | MiB/s median "
        "| server CPU ns/msg median | errors |"
    )
    out.append("|---|---:|---:|---:|---:|---:|")
    for key, rows in cells.items():
        if key[0] != "multicast":
            continue
        mib = stats(rows, "mib_per_s")
        ns = stats(rows, "server_ns_per_unit")
        out.append(
            f"| {key[2]} | {key[3]} | {spread(stats(rows, 'msgs_per_s'))} "
            f"| {fmt(mib[0] if mib else None, 1)} | {fmt(ns[0] if ns else None)} "
            f"| {errors(rows)} |"
        )

    out.append("\n## TLS handshakes\n")
    out.append(
        "16 connections at a time; each connects, handshakes, sends "
        "close_notify and waits for the server to close. Resumed handshakes "
        "offer the session saved from the previous connection.\n"
    )
    out.append(
        "| certificate | handshake | backend | handshakes/s median (min–max) "
        "| server CPU µs/handshake median | errors |"
    )
    out.append("|---|---|---|---:|---:|---:|")
    for key, rows in cells.items():
        if key[0] != "handshakes":
            continue
        us = stats(rows, "server_ns_per_unit")
        out.append(
            f"| {key[4].upper()} | {key[1]} | {key[2]} "
            f"| {spread(stats(rows, 'msgs_per_s'))} | {fmt(us[0] if us else None, 1)} "
            f"| {errors(rows)} |"
        )

    out.append("\n## Memory per idle connection\n")
    out.append(
        "A fresh server per row; (RSS while holding − RSS before) / "
        "connections, each connection checked with one echo first.\n"
    )
    out.append(
        "| backend | transport | connections | server bytes/connection "
        "| server CPU µs per connection set up | errors |"
    )
    out.append("|---|---|---:|---:|---:|---:|")
    for key, rows in cells.items():
        if key[0] != "memory":
            continue
        per = stats(rows, "server_ns_per_unit")
        setup = [number(extra(r, "server_cpu_us_per_conn")) for r in rows]
        setup = [v for v in setup if v is not None]
        out.append(
            f"| {key[2]} | {key[4]} | {fmt(number(key[3]))} "
            f"| {fmt(per[0] if per else None)} "
            f"| {fmt(statistics.median(setup) if setup else None, 1)} | {errors(rows)} |"
        )

    out.append("\n## Many connections at once\n")
    out.append(
        "`19k`: one server process (its descriptor limit is 20,000). "
        "`100k`: 8 server processes sharing the port through SO_REUSEPORT "
        "(`scripts/run-per-core.sh 8`). Every connection is checked with one echo.\n"
    )
    out.append(
        "| run | backend | connections ok | bench processes | source addresses "
        "| server bytes/connection | setup s | errors |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for key, rows in cells.items():
        if key[0] != "connections":
            continue
        r = rows[-1]
        out.append(
            f"| {key[1]} | {key[2]} | {fmt(number(extra(r, 'connections_ok')))} "
            f"| {extra(r, 'processes') or '–'} | {extra(r, 'sources') or '–'} "
            f"| {fmt(number(r['server_ns_per_unit']))} | {extra(r, 'setup_s') or '–'} "
            f"| {errors(rows)} |"
        )
    out.append("\nChart: `chart.svg` (echo throughput and server ns/msg per backend).\n")
    return "\n".join(out) + "\n"


PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def chart(cells):
    """Two panels (msgs/s, server ns/msg); groups = client count x transport;
    in each group one solid bar per backend without idle connections and a
    pale one with them."""
    echo = {k: v for k, v in cells.items() if k[0] == "echo" and k[1] == "cppserver-v2"}
    if not echo:
        return None
    backends = list(OrderedDict.fromkeys(k[2] for k in echo))
    idles = sorted({int(k[5]) for k in echo})
    groups = list(OrderedDict.fromkeys((k[3], k[4]) for k in echo))

    def value(metric, backend, clients, transport, idle):
        rows = echo.get(("echo", "cppserver-v2", backend, clients, transport, str(idle)))
        s = stats(rows or [], metric)
        return s[0] if s else 0.0

    panel_h, top, left, legend_w = 300, 60, 100, 140
    bar_w = 18
    group_w = len(backends) * len(idles) * bar_w + 40
    plot_w = max(group_w * len(groups), 2 * legend_w)
    width = left + plot_w + 40
    per_row = max(1, plot_w // legend_w)
    legend_rows = -(-len(backends) * len(idles) // per_row)
    top += 18 * (legend_rows - 1)
    height = top + 2 * (panel_h + 80) + 40
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="24" font-size="16" font-weight="bold">'
        "Echo: backends with and without idle connections</text>",
    ]
    # Legend.
    n = 0
    for i, backend in enumerate(backends):
        for j, idle in enumerate(idles):
            x = left + (n % per_row) * legend_w
            y = 34 + 18 * (n // per_row)
            svg.append(
                f'<rect x="{x}" y="{y}" width="12" height="12" '
                f'fill="{PALETTE[i % len(PALETTE)]}" fill-opacity="{1.0 if j == 0 else 0.4}"/>'
            )
            svg.append(
                f'<text x="{x + 16}" y="{y + 11}">{escape(backend)}, {idle:,} idle</text>'
            )
            n += 1
    panels = [
        ("msgs_per_s", "messages per second (median)"),
        ("server_ns_per_unit", "server CPU ns per message (median)"),
    ]
    for p, (metric, title) in enumerate(panels):
        y0 = top + p * (panel_h + 80) + 20
        # Log scale: poll with idle connections is orders of magnitude
        # away from the rest, and a linear axis would flatten everyone else.
        values = [
            value(metric, b, c, t, i) for b in backends for (c, t) in groups for i in idles
        ]
        positive = [v for v in values if v > 0] or [1.0]
        lo = 10 ** math.floor(math.log10(min(positive)))
        hi = 10 ** math.ceil(math.log10(max(positive)))
        if hi <= lo:
            hi = lo * 10

        def height(v, lo=lo, hi=hi):
            if v <= 0:
                return 0.0
            return panel_h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

        svg.append(
            f'<text x="{left}" y="{y0 - 4}" font-weight="bold">{escape(title)}, log scale</text>'
        )
        svg.append(
            f'<line x1="{left}" y1="{y0 + panel_h}" x2="{left + plot_w}" '
            f'y2="{y0 + panel_h}" stroke="black"/>'
        )
        tick = lo
        while tick <= hi * 1.0001:
            ty = y0 + panel_h - height(tick)
            svg.append(
                f'<line x1="{left - 4}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" '
                f'stroke="#ddd"/>'
            )
            svg.append(
                f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:,.0f}</text>'
            )
            tick *= 10
        for g, (clients, transport) in enumerate(groups):
            gx = left + g * group_w + 20
            k = 0
            for i, backend in enumerate(backends):
                for j, idle in enumerate(idles):
                    v = value(metric, backend, clients, transport, idle)
                    h = height(v)
                    bx = gx + k * bar_w
                    svg.append(
                        f'<rect x="{bx}" y="{y0 + panel_h - h:.1f}" width="{bar_w - 2}" '
                        f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}" '
                        f'fill-opacity="{1.0 if j == 0 else 0.4}">'
                        f"<title>{escape(backend)}, {clients} clients, {transport}, "
                        f"{idle:,} idle: {v:,.0f}</title></rect>"
                    )
                    k += 1
            cx = gx + k * bar_w / 2
            label = f"{clients} client{'s' if clients != '1' else ''}, {transport}"
            svg.append(
                f'<text x="{cx}" y="{y0 + panel_h + 16}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench-chart.py RESULTS-DIR")
    directory = sys.argv[1]
    cells = load(os.path.join(directory, "results.csv"))
    reps = max((len(v) for k, v in cells.items() if k[0] == "echo"), default=1)
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(markdown(cells, reps))
    svg = chart(cells)
    if svg:
        with open(os.path.join(directory, "chart.svg"), "w") as f:
            f.write(svg)


if __name__ == "__main__":
    main()
