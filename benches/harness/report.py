"""Render RESULTS.md from the collected results."""

from __future__ import annotations

from pathlib import Path

from harness.results import Cell, Results, ratio
from harness.systems import PEERS, SYSTEMS
from harness.targets import TARGETS
from harness.workloads import WORKLOADS, short

CAPPED = "†"
HOW = (
    ("1", "`delay()` / calling the huey task, 5,000 times in a loop; no worker running."),
    ("2", "`queue.enqueue_many(name, args_list)` for 5,000 jobs in one call."),
    (
        "3",
        "5,000 no-op jobs queued first; the clock runs from worker start until the "
        "last job has run and, where the system records it, its completion is stored.",
    ),
    (
        "4a",
        "200 `echo(i)` jobs, one at a time: enqueue, wait for the result, next "
        "(5 warm-up round trips first); 4 worker threads in the same process.",
    ),
    ("4b", "as 4a, with the worker in a separate process started by the driver."),
    (
        "4c",
        "as 4a, with the worker started by the system's own CLI in another process "
        "(`taskito worker`, `huey_consumer`, `celery -A celery_app worker -c 4`, `rq worker`) "
        "and a pause drawn uniformly from 0-50 ms (fixed seed) before each trip, so idle "
        "back-off shows; the producer never runs a worker. Celery and RQ use a local "
        "redis-server on loopback, started by the harness.",
    ),
    (
        "5",
        "worker (16 threads) started and warmed up, then 400 jobs sleeping 20 ms are "
        "enqueued (batch API where there is one); efficiency = (400 × 0.02 s / 16) / "
        "wall time.",
    ),
    (
        "6",
        "2,000 jobs queued, then `taskito worker --app taskito_app:queue` or "
        "`huey_consumer huey_app.huey -w 4 -k thread` is started; the clock includes its "
        "start-up and stops when all jobs are done.",
    ),
    (
        "7",
        "queue filled with the fastest bulk path (not timed), then the worker drains a "
        "fixed slice; each slice is capped at 60 s and a capped rate counts the jobs "
        "done within the window.",
    ),
    (
        "8",
        "worker process (4 threads) started, one job run, then 1 s of rest; CPU time "
        "of the whole process over the next 10 s.",
    ),
    (
        "9",
        "100,000 jobs queued, then a worker process (4 threads) drains them; VmHWM of "
        "that process, watched for at most 120 s.",
    ),
)


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    size = abs(value)
    spec = (
        ",.0f"
        if size >= 1000
        else ".0f"
        if size >= 100
        else ".1f"
        if size >= 10
        else ".2f"
        if size >= 1
        else ".3f"
    )
    return format(value, spec)


def clean(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def cell_text(cell: Cell) -> str:
    if cell.na:
        return f"n/a: {clean(cell.na)}"
    if not cell.values:
        return f"error: {clean(cell.errors[0])}" if cell.errors else "—"
    text = fmt(cell.median)
    if len(cell.values) > 1:
        text += f" ({fmt(min(cell.values))}–{fmt(max(cell.values))})"
    if cell.capped:
        text += CAPPED
    if cell.errors:
        text += f" ({len(cell.errors)} of {len(cell.values) + len(cell.errors)} failed)"
    return text


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def results_table(results: Results, systems: list[str], ran: set, quick: bool) -> list[str]:
    peers = [p for p in PEERS if p in systems] if "ours" in systems else []
    header = ["#", "workload", "unit"] + [SYSTEMS[s].label for s in systems]
    header += [f"ours ÷ {SYSTEMS[p].label}" for p in peers]
    rows = []
    for workload in WORKLOADS:
        if workload.key not in ran:
            continue
        for variant in workload.variants:
            for metric in workload.metrics:
                title = workload.describe(variant, quick)
                if len(workload.metrics) > 1:
                    title += f", {metric.label}"
                arrow = "↑" if metric.higher_is_better else "↓"
                cells = [results.cell(workload.key, variant.key, s, metric.key) for s in systems]
                row = [workload.number, title, f"{metric.unit} {arrow}"]
                row += [cell_text(c) for c in cells]
                mine = results.median(workload.key, variant.key, "ours", metric.key)
                row += [
                    ratio_text(ratio(mine, results.median(workload.key, variant.key, p, metric.key)))
                    for p in peers
                ]
                rows.append(row)
        if workload.key == "backlog":
            big, small = (workload.args(v, quick)["queued"] for v in workload.variants[::-1])
            row = ["7", f"drain rate, {short(big)} queued ÷ {short(small)} queued", "ratio ↑"]
            row += [
                ratio_text(
                    ratio(
                        results.median("backlog", "big", s, "jobs_per_s"),
                        results.median("backlog", "small", s, "jobs_per_s"),
                    )
                )
                for s in systems
            ]
            rows.append(row + [""] * len(peers))
        if workload.key == "cli":
            row = ["6", "CLI worker exit code after SIGINT", "code"]
            row += [
                ", ".join(str(c) for c in results.observed("cli", "", s, "exit_code")) or "—" for s in systems
            ]
            rows.append(row + [""] * len(peers))
    return _table(header, rows)


def targets_table(results: Results) -> list[str]:
    rows = []
    for target in TARGETS:
        value = target.measure(results)
        met = target.met(value)
        shown = "—" if value is None else f"{fmt(value)}{target.unit}"
        rows.append([target.text, shown, "no data" if met is None else "yes" if met else "no"])
    return _table(["target", "measured (ours)", "met"], rows)


def render(
    results: Results,
    *,
    systems: list[str],
    ran: set,
    header: dict,
    machine: dict,
    system_rows: list[list[str]],
    quick: bool,
) -> str:
    lines = ["# Benchmark results", ""]
    if quick:
        lines += [
            "> **Quick smoke run** (`--quick`): tiny sizes, single runs. The figures "
            "only show that every workload runs; they are not comparable.",
            "",
        ]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += ["", "## Machine", ""]
    lines += _table(["", ""], [[k, clean(v)] for k, v in machine.items()])
    lines += ["", "## Systems", ""]
    lines += _table(["system", "package", "python", "how it runs"], system_rows)
    lines += [
        "",
        "## Results",
        "",
        "Median over the repeats, (min–max) after it. ↑: higher is better, "
        "↓: lower is better. The ratio columns divide ours by the peer, so for ↓ "
        "rows a ratio below 1 favours ours.",
        "",
    ]
    table = results_table(results, systems, ran, quick)
    lines += table + [""]
    if any(CAPPED in row for row in table):
        lines += [
            f"{CAPPED} capped by the time window: the rate counts the jobs finished "
            "within it, and the peak RSS is the peak up to that point.",
            "",
        ]
    lines += [
        "## Targets",
        "",
        "Ratios of medians from this run."
        + (" Quick-run sizes make these indicative only." if quick else ""),
        "",
    ]
    lines += targets_table(results)
    lines += [
        "",
        "## What moved each figure",
        "",
        _what_moved(),
        "",
    ]
    lines += ["## How each workload runs", ""]
    lines += [f"- **{n}.** {text}" for n, text in HOW]
    lines += [
        "",
        "Sizes above are the full ones; `--quick` shrinks them. Each run is a fresh "
        "driver process on a fresh SQLite database in a temp dir. Library INFO "
        "logging is switched off in every system (taskito 0.22 logs each job by "
        "default). See benches/README.md.",
        "",
    ]
    return "\n".join(lines)


def _what_moved() -> str:
    """The design notes kept in benches/what_moved.md (written by hand, not measured here)."""
    path = Path(__file__).resolve().parents[1] / "what_moved.md"
    if path.exists():
        return path.read_text().strip()
    return "This section lists the design changes made to ours and the effect each had on the figures above."
