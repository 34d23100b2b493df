"""Checks a built wheel: abi3, the files it must carry, and a truthful platform tag.

python .ci/check_wheel.py dist/taskito-*.whl

The platform tag is checked against `auditwheel show` (Linux): the wheel must not claim an
older glibc than its symbols need.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile


def _glibc(tag: str) -> tuple[int, int] | None:
    if tag.startswith("manylinux2014"):
        return (2, 17)
    m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
    return (int(m.group(1)), int(m.group(2))) if m else None


def main(path: str) -> None:
    name = path.rsplit("/", 1)[-1]
    _dist, _version, python_tag, abi_tag, platform = name[: -len(".whl")].split("-")
    problems = []
    if (python_tag, abi_tag) != ("cp39", "abi3"):
        problems.append(f"expected a cp39-abi3 wheel, got {python_tag}-{abi_tag}")
    with zipfile.ZipFile(path) as wheel:
        files = wheel.namelist()
    for wanted in ("taskito/_taskito.abi3.so", "taskito/_taskito.pyi", "taskito/py.typed"):
        if wanted not in files:
            problems.append(f"missing {wanted}")
    if not any(re.search(r"\.dist-info/licenses/LICENSE$", f) for f in files):
        problems.append("missing the LICENSE file under .dist-info/licenses/")
    if platform.startswith("manylinux") or platform.startswith("linux"):
        audit = subprocess.run(["auditwheel", "show", path], capture_output=True, text=True, check=True)
        shown = audit.stdout
        print(shown.strip())
        m = re.search(r'platform\s+tag:\s+"([^"]+)"', shown.replace("\n", " "))
        if not m:
            problems.append("auditwheel show named no platform tag")
        else:
            needed = _glibc(m.group(1))
            claimed = [g for g in map(_glibc, platform.split(".")) if g]
            if needed is None or not claimed:
                problems.append(f"wheel claims {platform}; auditwheel says {m.group(1)}")
            elif min(claimed) < needed:
                problems.append(f"wheel claims {platform} but its symbols need {m.group(1)}")
    if problems:
        sys.exit("wheel check failed:\n  " + "\n  ".join(problems))
    print(f"{name}: abi3, stubs, py.typed and LICENSE present; platform tag {platform} is truthful")


if __name__ == "__main__":
    for wheel_path in sys.argv[1:]:
        main(wheel_path)
