"""examples/trust.py, and the program in docs/guides/trust.md, run as written."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def _run(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, path], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_trust_example_runs(tmp_path: object) -> None:
    proc = _run(str(ROOT / "examples" / "trust.py"))
    assert proc.returncode == 0, proc.stderr
    assert "job signed with the old key: hello ada" in proc.stdout
    assert "relabelled job: failed - CryptoError" in proc.stdout


def test_the_program_in_the_trust_guide_runs(tmp_path: object) -> None:
    text = (ROOT / "docs" / "guides" / "trust.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    program = next(b for b in blocks if "def main()" in b)
    path = tmp_path / "guide_program.py"  # type: ignore[operator]
    path.write_text(program)
    proc = _run(str(path))
    assert proc.returncode == 0, proc.stderr
    assert "relabelled job: failed - CryptoError" in proc.stdout
