"""A throwaway virtualenv with the stock ``opentelemetry-distro``, for the start-up comparison.

Why a separate venv: the stock distro registers its own ``opentelemetry_distro``
and ``opentelemetry_configurator`` entry points, so installing it next to
splight-runner would change what the runner does. The versions are the ones
installed here (same SDK, same instrumentation), so the comparison is about the
distros, not about OpenTelemetry releases. Created on first use (needs the
package index), reused while the versions match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.harness import BENCH_DIR, progress

#: Overridable so CI (or a read-only checkout) can put it elsewhere.
STOCK_VENV_VARIABLE = "BENCH_STOCK_VENV"
DEFAULT_STOCK_VENV = BENCH_DIR / ".venv-stock"


def wanted_packages() -> dict[str, str]:
    """The stock distro's packages pinned to the versions of our own OpenTelemetry install."""
    sdk = metadata.version("opentelemetry-sdk")
    instrumentation = metadata.version("opentelemetry-instrumentation")
    return {
        "opentelemetry-distro": instrumentation,
        "opentelemetry-sdk": sdk,
        "opentelemetry-exporter-otlp": metadata.version("opentelemetry-exporter-otlp"),
    }


def venv_dir() -> Path:
    return Path(os.environ.get(STOCK_VENV_VARIABLE) or DEFAULT_STOCK_VENV)


def _stamp(directory: Path) -> Path:
    return directory / "bench-stamp.json"


def ready() -> Path | None:
    """The stock venv if it exists with the wanted versions, else None."""
    directory = venv_dir()
    try:
        stamp = json.loads(_stamp(directory).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp != wanted_packages() or not (directory / "bin" / "opentelemetry-instrument").exists():
        return None
    return directory


def ensure() -> Path:
    """Create (or re-create) the stock venv when needed; returns its directory."""
    existing = ready()
    if existing is not None:
        return existing
    directory = venv_dir()
    packages = wanted_packages()
    pins = [f"{name}=={version}" for name, version in packages.items()]
    progress(f"stock distro: creating {directory} with {', '.join(pins)} (first run only)")
    if directory.exists():
        shutil.rmtree(directory)
    # The base interpreter, not this venv's: the stock venv must not see splight-runner.
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(directory)], check=True)
    python = directory / "bin" / "python"
    progress("stock distro: pip install (this takes a minute)")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        check=True,
    )
    _stamp(directory).write_text(json.dumps(packages), encoding="utf-8")
    progress("stock distro: ready")
    return directory
