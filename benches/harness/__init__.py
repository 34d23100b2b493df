"""The benchmark harness: venvs, the workload table, runs and the report."""

from pathlib import Path

BENCHES = Path(__file__).resolve().parent.parent
REPO = BENCHES.parent
DRIVERS = BENCHES / "drivers"
VENVS = BENCHES / ".venvs"
WORK = BENCHES / ".work"
