#!/usr/bin/env python3
"""Turns a scripts/compare.sh run into results.md and chart.svg.

Usage: scripts/compare/report.py DIR   (DIR holds results.csv, scenarios.csv,
run.txt and skipped.txt, as compare.sh writes them)

One table per scenario, the servers side by side: the median rate and the
median server CPU per unit over the repetitions, each with its ratio to the
best server of the table; the paired ratio to Portcullis (per repetition,
the peer's CPU per unit over Portcullis's in the same repetition, then the
median), which cancels drift that hits both alike; and the load generator's
CPU, with cells over 95 % of a core marked "limited by the client".

The one idea: a ratio between two servers is only worth something when
both were measured in the same minutes by the same client, so the paired
ratio is the figure to quote, and the medians are there to read.
Standard library only.
"""

import csv
import os
import statistics
import sys
from collections import OrderedDict
from html import escape

CLIENT_LIMIT = 95.0

NAMES = {
    "portcullis": "Portcullis",
    "portcullis-http": "Portcullis",
    "portcullis-cppcert": "Portcullis",
    "portcullis-multicast": "Portcullis",
    "epoll-c": "C epoll (benches/peers)",
    "tokio": "tokio (benches/peers)",
    "nginx-http": "nginx",
    "nginx-https": "nginx",
    "haproxy-tls": "HAProxy TCP + C epoll",
    "cppserver": "CppServer",
    "cppserver-ssl": "CppServer",
    "cppserver-multicast": "CppServer",
}

# Goals: (scenario ids, peers Portcullis must lead, what "lead" means).
GOALS = [
    (("echo-v1", "echo-v2", "echo-pingpong"), ("epoll-c", "tokio"), "cpu"),
    (("http1", "http1-tls"), ("nginx-http", "nginx-https"), "rate+cpu"),
    (("handshakes", "handshakes-s_time"), ("nginx-https",), "rate"),
]


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def fmt_cpu(value):
    """CPU per unit: whole numbers as such, small fractions with two places."""
    if value is None or value >= 100 or value == int(value):
        return fmt(value)
    return fmt(value, 2)


def load(directory):
    with open(os.path.join(directory, "scenarios.csv"), newline="") as f:
        scenarios = OrderedDict((r["id"], r) for r in csv.DictReader(f))
    cells = OrderedDict()
    with open(os.path.join(directory, "results.csv"), newline="") as f:
        for r in csv.DictReader(f):
            cells.setdefault(r["scenario"], OrderedDict()).setdefault(r["server"], []).append(r)
    run = {}
    path = os.path.join(directory, "run.txt")
    if os.path.exists(path):
        for line in open(path):
            key, _, value = line.rstrip("\n").partition("=")
            run[key] = value
    skipped = []
    path = os.path.join(directory, "skipped.txt")
    if os.path.exists(path):
        skipped = [line.strip() for line in open(path) if line.strip()]
    return scenarios, cells, run, skipped


def summary(rows):
    """Medians of one server's repetitions in one scenario."""
    return {
        "rate": median(number(r["rate"]) for r in rows),
        "cpu": median(number(r["server_cpu_per_unit"]) for r in rows),
        "client": median(number(r["client_cpu_pct"]) for r in rows),
        "errors": sum(int(number(r["errors"]) or 0) for r in rows),
        "extra": rows[len(rows) // 2]["extra"],
    }


def paired(servers, server, reference):
    """Median over repetitions of server's CPU per unit / reference's."""
    mine = {r["rep"]: number(r["server_cpu_per_unit"]) for r in servers.get(server, [])}
    theirs = {r["rep"]: number(r["server_cpu_per_unit"]) for r in servers.get(reference, [])}
    ratios = [mine[k] / theirs[k] for k in mine if mine[k] and theirs.get(k)]
    return median(ratios)


def portcullis_of(servers):
    return next((s for s in servers if s.startswith("portcullis")), None)


def table(scenario, servers):
    out = [f"### {scenario['title']}\n", f"Load generator: `{scenario['generator']}`.\n"]
    rate_unit, cpu_unit = scenario["rate_unit"], scenario["cpu_unit"]
    stats = {s: summary(rows) for s, rows in servers.items()}
    best_rate = max((v["rate"] for v in stats.values() if v["rate"]), default=None)
    best_cpu = min((v["cpu"] for v in stats.values() if v["cpu"]), default=None)
    reference = portcullis_of(servers)
    out.append(
        f"| server | {rate_unit} | vs best | server CPU {cpu_unit} | vs best "
        "| CPU vs Portcullis (paired) | client CPU % | errors | note |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for server, v in stats.items():
        rate_vs = f"{v['rate'] / best_rate:.2f}" if v["rate"] and best_rate else "–"
        cpu_vs = f"{v['cpu'] / best_cpu:.2f}" if v["cpu"] and best_cpu else "–"
        pair = paired(servers, server, reference) if reference else None
        notes = []
        if v["client"] is not None and v["client"] > CLIENT_LIMIT:
            notes.append("limited by the client")
        if v["extra"]:
            notes.append(v["extra"].replace(";", ", "))
        out.append(
            f"| {NAMES.get(server, server)} | {fmt(v['rate'])} | {rate_vs} "
            f"| {fmt_cpu(v['cpu'])} | {cpu_vs} "
            f"| {fmt(pair, 2)} | {fmt(v['client'], 1)} | {v['errors']} | {'; '.join(notes)} |"
        )
    return "\n".join(out) + "\n"


def goals(cells):
    out = ["## Goals\n"]
    for ids, peers, kind in GOALS:
        for sid in ids:
            servers = cells.get(sid)
            if not servers:
                continue
            mine = portcullis_of(servers)
            if not mine:
                continue
            m = summary(servers[mine])
            for peer in peers:
                if peer not in servers:
                    continue
                p = summary(servers[peer])
                pair = paired(servers, peer, mine)
                if kind == "cpu":
                    lead = m["cpu"] is not None and p["cpu"] is not None and m["cpu"] < p["cpu"]
                    what = f"server CPU per message {fmt_cpu(m['cpu'])} vs {fmt_cpu(p['cpu'])}"
                elif kind == "rate":
                    lead = m["rate"] is not None and p["rate"] is not None and m["rate"] > p["rate"]
                    what = f"rate {fmt(m['rate'])} vs {fmt(p['rate'])}"
                else:
                    lead = (
                        None not in (m["rate"], p["rate"], m["cpu"], p["cpu"])
                        and m["rate"] >= p["rate"]
                        and m["cpu"] <= p["cpu"]
                    )
                    what = (
                        f"rate {fmt(m['rate'])} vs {fmt(p['rate'])}, "
                        f"CPU per request {fmt(m['cpu'], 2)} vs {fmt(p['cpu'], 2)}"
                    )
                verdict = "leads" if lead else "**does not lead**"
                out.append(
                    f"- {sid}: Portcullis {verdict} {NAMES.get(peer, peer)} ({what}; "
                    f"peer's CPU over Portcullis's, paired: {fmt(pair, 2)})"
                )
    return "\n".join(out) + "\n"


def markdown(scenarios, cells, run, skipped):
    out = ["# Portcullis side by side\n"]
    out.append(
        f"{run.get('date', '?')}; {run.get('machine', '?')}; load average {run.get('load', '?')}. "
        f"Portcullis {run.get('portcullis', '?')}; "
        + ", ".join(f"{k} {run[k]}" for k in ("nginx", "haproxy", "wrk", "openssl", "tokio") if k in run)
        + ".\n"
    )
    out.append(
        f"Every server: one worker pinned to CPU 0. Every load generator: CPU 1. "
        f"{run.get('reps', '?')} repetition(s) of {run.get('secs', '?')} s per cell, interleaved, "
        "the order of the servers rotating; medians. *vs best*: the median over the best "
        "server's in the table. *CPU vs Portcullis (paired)*: per repetition, the server's CPU "
        "per unit over Portcullis's in the same repetition, then the median (below 1: cheaper "
        f"than Portcullis). Client CPU over {CLIENT_LIMIT:.0f} % of its core: the figure is "
        "limited by the client, not the server.\n"
    )
    for line in skipped:
        out.append(f"- Skipped: {line}")
    if skipped:
        out.append("")
    out.append(goals(cells))
    for sid, scenario in scenarios.items():
        if sid in cells:
            out.append(table(scenario, cells[sid]))
    out.append("Chart: `chart.svg` (server CPU per unit, median, per scenario).\n")
    return "\n".join(out)


def chart(scenarios, cells):
    """One row of bars per scenario: each server's median server CPU per
    unit, relative to the table's cheapest (so scenarios of different units
    share one axis); Portcullis in red."""
    rows = []
    for sid, scenario in scenarios.items():
        servers = cells.get(sid)
        if not servers:
            continue
        stats = [(s, summary(r)["cpu"]) for s, r in servers.items()]
        stats = [(s, c) for s, c in stats if c]
        if stats:
            rows.append((scenario, stats, min(c for _, c in stats)))
    if not rows:
        return None
    bar_h, gap, left, width = 16, 26, 230, 860
    scale = (width - left - 140) / max(c / best for _, stats, best in rows for _, c in stats)
    height = 50 + sum(len(stats) * bar_h + gap + 18 for _, stats, _ in rows)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="24" font-size="16" font-weight="bold">Server CPU per unit, '
        "relative to the cheapest server of each scenario (shorter is better)</text>",
    ]
    y = 50
    for scenario, stats, best in rows:
        svg.append(f'<text x="10" y="{y + 12}" font-weight="bold">{escape(scenario["title"])}</text>')
        y += 18
        for server, cpu in stats:
            w = cpu / best * scale
            colour = "#d62728" if server.startswith("portcullis") else "#1f77b4"
            svg.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">'
                       f"{escape(NAMES.get(server, server))}</text>")
            svg.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}" fill="{colour}"/>')
            svg.append(f'<text x="{left + w + 6:.1f}" y="{y + 12}">{fmt_cpu(cpu)} '
                       f'{escape(scenario["cpu_unit"])} ({cpu / best:.2f}×)</text>')
            y += bar_h
        y += gap
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def failed_cells(cells):
    """Cells that counted errors or produced no figure."""
    return [
        f"{sid} {server} rep {r['rep']}"
        for sid, servers in cells.items()
        for server, rows in servers.items()
        for r in rows
        if int(number(r["errors"]) or 0) > 0 or number(r["rate"]) is None
    ]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/compare/report.py DIR")
    directory = sys.argv[1]
    scenarios, cells, run, skipped = load(directory)
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(markdown(scenarios, cells, run, skipped))
    svg = chart(scenarios, cells)
    if svg:
        with open(os.path.join(directory, "chart.svg"), "w") as f:
            f.write(svg)
    failed = failed_cells(cells)
    for cell in failed:
        print(f"compare.sh: a cell failed or counted errors: {cell}", file=sys.stderr)
    # Exit 1 so that CI notices; the tables are written either way.
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
