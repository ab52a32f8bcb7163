"""The benchmark's own virtualenv: Ironspire (editable, from this checkout) plus the baselines.

The official SDKs and LiteLLM pull in dozens of packages (aiohttp, tokenizers, boto3...) that
the project does not use; keeping them out of the project venv means a benchmark run can never
change the versions the tests run against. The venv is made on first use and reused while
bench/requirements.txt and pyproject.toml are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "bench" / ".venv"
REQUIREMENTS = REPO / "bench" / "requirements.txt"
_STAMP = ".ironspire-bench-stamp"


def location() -> Path:
    return Path(os.environ.get("IRONSPIRE_BENCH_VENV", DEFAULT))


def _fingerprint() -> str:
    h = hashlib.sha256()
    for path in (REQUIREMENTS, REPO / "pyproject.toml"):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure(venv: Path | None = None) -> Path:
    """The venv's interpreter, creating or refreshing the venv first if needed."""
    venv = venv or location()
    python = python_in(venv)
    stamp = venv / _STAMP
    wanted = _fingerprint()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"bench: preparing {venv} (first run takes a minute or two)...", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log = venv / "pip-install.log"
    with log.open("w") as out:
        for cmd in ([*pip, "--upgrade", "pip"], [*pip, "-e", str(REPO), "-r", str(REQUIREMENTS)]):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                sys.exit(f"bench: installing the benchmark venv failed; see {log}")
    stamp.write_text(wanted + "\n")
    return python


def running_in(venv: Path) -> bool:
    return Path(sys.prefix).resolve() == venv.resolve()
