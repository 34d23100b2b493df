#!/usr/bin/env python3
"""Run the benchmark suite and write benches/RESULTS.md.

python3 benches/run.py                    # full suite, 3 repeats
python3 benches/run.py --quick            # smoke run, under a minute
python3 benches/run.py --only drain,cli --systems huey,ours
python3 benches/run.py --ours-python .venv/bin/python   # skip building ours
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from harness import BENCHES, WORK, machine, report, runner, systems
from harness.redis_server import RedisServer
from harness.results import Results
from harness.workloads import QUICK_TIMEOUT, WORKLOADS

ALL_SYSTEMS = list(systems.SYSTEMS)
HOW = {
    "huey": "SqliteHuey with its defaults, thread consumer (in-process or huey_consumer); "
    "venv benches/.venvs/huey",
    "taskito022": "Queue(workers=N, scheduler_poll_interval_ms=50), rest default; "
    "venv benches/.venvs/taskito022",
    "ours": "same Queue settings; the repo pip-installed (maturin release build) into benches/.venvs/ours",
    "celery": "broker and result backend on a local redis-server (loopback, no persistence), "
    "`celery -A celery_app worker -c N` (default prefork pool); venv benches/.venvs/celery",
    "rq": "the same redis-server, `rq worker` (default worker class); venv benches/.venvs/rq",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark ours against huey, taskito 0.22, Celery and RQ.")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and 1 repeat: a smoke run of under a minute"
    )
    parser.add_argument("--repeat", type=int, help="runs per workload and system (default 3; 1 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads: " + ",".join(w.key for w in WORKLOADS))
    parser.add_argument(
        "--systems", default=",".join(ALL_SYSTEMS), help="comma-separated, from: " + ",".join(ALL_SYSTEMS)
    )
    parser.add_argument(
        "--ours-python",
        metavar="PATH",
        help="interpreter that already imports ours; skips the build and passes PYTHONPATH through",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="rebuild ours even when its sources have not changed"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="report path (default benches/RESULTS.md, or benches/.work/RESULTS-quick.md with --quick)",
    )
    args = parser.parse_args(argv)
    args.systems = _pick(args.systems, ALL_SYSTEMS, "system", parser)
    args.only = (
        _pick(args.only, [w.key for w in WORKLOADS], "workload", parser)
        if args.only
        else [w.key for w in WORKLOADS]
    )
    if args.ours_python:
        # Absolute, but not through symlinks: a venv's python must keep its path.
        found = shutil.which(args.ours_python)
        if not found:
            parser.error(f"--ours-python: no interpreter at {args.ours_python}")
        args.ours_python = os.path.abspath(found)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.out = args.out or (WORK / "RESULTS-quick.md" if args.quick else BENCHES / "RESULTS.md")
    return args


def _pick(text: str, allowed: list[str], what: str, parser) -> list[str]:
    picked = [name.strip() for name in text.split(",") if name.strip()]
    for name in picked:
        if name not in allowed:
            parser.error(f"unknown {what} '{name}'; choose from {', '.join(allowed)}")
    return [name for name in allowed if name in picked]


def say(text: str) -> None:
    print(text, flush=True)


def command_line(args: argparse.Namespace) -> str:
    text = "python3 " + shlex.join(sys.argv)
    if args.ours_python and os.environ.get("PYTHONPATH"):
        text = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} " + text
    return text


def describe_systems(args, pythons: dict) -> list[list[str]]:
    rows = []
    for key in args.systems:
        python = pythons[key]
        if isinstance(python, Exception):
            rows.append([systems.SYSTEMS[key].label, f"setup failed: {python}", "—", HOW[key]])
            continue
        found = runner.run_driver(
            python,
            systems.SYSTEMS[key].driver,
            key,
            "version",
            {},
            120,
            key == "ours" and bool(args.ours_python),
            f"version-{key}",
        )
        info = found.get("metrics", {})
        how = (
            HOW[key]
            if not (key == "ours" and args.ours_python)
            else f"same Queue settings; interpreter given by --ours-python: {python}"
        )
        rows.append(
            [
                systems.SYSTEMS[key].label,
                info.get("version", f"error: {found.get('error', '?')}"),
                info.get("python", "—"),
                how,
            ]
        )
    return rows


def headline(outcome: dict, workload) -> str:
    if "error" in outcome:
        return "error: " + outcome["error"][:100]
    if "na" in outcome:
        return "n/a: " + outcome["na"]
    metric = workload.metrics[0]
    return f"{report.fmt(outcome['metrics'].get(metric.key))} {metric.unit}"


def run_all(args, pythons: dict, results: Results) -> None:
    plan = [(w, v) for w in WORKLOADS if w.key in args.only for v in w.variants]
    total, done = len(plan) * args.repeat * len(args.systems), 0
    for workload, variant in plan:
        timeout = QUICK_TIMEOUT if args.quick else workload.timeout
        for rep in range(args.repeat):
            shift = rep % len(args.systems)  # rotate who goes first in each repeat
            for key in args.systems[shift:] + args.systems[:shift]:
                done += 1
                python, started = pythons[key], time.monotonic()
                if isinstance(python, Exception):
                    outcome = {"error": f"setup failed: {python}"}
                else:
                    name = "-".join(filter(None, (workload.key, variant.key, key, str(rep + 1))))
                    outcome = runner.run_driver(
                        python,
                        systems.SYSTEMS[key].driver,
                        key,
                        workload.key,
                        workload.args(variant, args.quick),
                        timeout,
                        key == "ours" and bool(args.ours_python),
                        name,
                    )
                results.add(workload.key, variant.key, key, outcome)
                label = workload.key + (f"/{variant.key}" if variant.key else "")
                say(
                    f"[{done}/{total}] {label} {key} #{rep + 1}: {headline(outcome, workload)} "
                    f"({time.monotonic() - started:.1f}s)"
                )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    began, began_at = time.monotonic(), datetime.datetime.now(datetime.timezone.utc)
    shutil.rmtree(WORK / "logs", ignore_errors=True)
    (WORK / "logs").mkdir(parents=True)
    facts = machine.facts()
    pythons = systems.prepare(args.systems, args.ours_python, args.rebuild, say)
    setup_s = time.monotonic() - began
    for key, python in pythons.items():
        if isinstance(python, Exception):
            say(f"{key}: {python}")
    redis = None
    if any(key in systems.NEEDS_REDIS and not isinstance(pythons[key], Exception) for key in args.systems):
        redis = RedisServer(WORK / "redis")
        say(f"redis-server on {redis.url}")
    try:
        system_rows = describe_systems(args, pythons)
        results = Results()
        run_all(args, pythons, results)
    finally:
        if redis:
            redis.stop()
    facts["Load average at end (1/5/15 min)"] = machine.load_average()
    header = {
        "Date": began_at.strftime("%Y-%m-%d %H:%M UTC"),
        "Command": f"`{command_line(args)}`",
        "Repeats": f"{args.repeat} per workload and system, each a fresh process on a fresh database",
        "Wall time": f"{(time.monotonic() - began) / 60:.1f} min, of which "
        f"{setup_s / 60:.1f} min making venvs and building ours",
    }
    text = report.render(
        results,
        systems=args.systems,
        ran=set(args.only),
        header=header,
        machine=facts,
        system_rows=system_rows,
        quick=args.quick,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (WORK / "last-run.json").write_text(json.dumps(results.to_json(), indent=1))
    say(f"wrote {args.out} (raw results: {WORK / 'last-run.json'}, logs: {WORK / 'logs'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
