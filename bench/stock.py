"""Throwaway virtualenvs with what users would run instead, for side-by-side rows.

* ``stock``: the stock ``opentelemetry-distro`` at the versions of our own
  OpenTelemetry install (same SDK, same instrumentation), so a comparison is
  about the distros, not about OpenTelemetry releases. Separate because the stock
  distro registers its own entry points, which would change what the runner does.
* ``seed``: splight-runner 1.1.6 from the package index, the release this
  project replaces (its own dependencies, e.g. requests).

Each is created on first use (needs the package index) and reused while its pins match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.harness import BENCH_DIR, progress

#: The release this project replaces, measured side by side.
SEED_VERSION = "1.1.6"


def _stock_packages() -> dict[str, str]:
    sdk = metadata.version("opentelemetry-sdk")
    instrumentation = metadata.version("opentelemetry-instrumentation")
    return {
        "opentelemetry-distro": instrumentation,
        "opentelemetry-sdk": sdk,
        # What a user of the stock distro installs: the OTLP exporter meta-package, released with the SDK
        # (the runner's own venv has only its HTTP half since the lean install).
        "opentelemetry-exporter-otlp": sdk,
    }


@dataclass(frozen=True)
class ReferenceVenv:
    name: str
    #: Overridable so CI (or a read-only checkout) can put it elsewhere.
    variable: str
    packages: Callable[[], dict[str, str]]
    #: A console script that must exist in ``bin/`` once installed.
    script: str

    def directory(self) -> Path:
        return Path(os.environ.get(self.variable) or BENCH_DIR / f".venv-{self.name}")

    def ready(self) -> Path | None:
        """The venv if it exists with the wanted versions, else None."""
        directory = self.directory()
        try:
            stamp = json.loads((directory / "bench-stamp.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if stamp != self.packages() or not (directory / "bin" / self.script).exists():
            return None
        return directory

    def ensure(self) -> Path:
        """Create (or re-create) the venv when needed; returns its directory."""
        existing = self.ready()
        if existing is not None:
            return existing
        directory = self.directory()
        packages = self.packages()
        pins = [f"{name}=={version}" for name, version in packages.items()]
        progress(f"{self.name}: creating {directory} with {', '.join(pins)} (first run only)")
        if directory.exists():
            shutil.rmtree(directory)
        # The base interpreter, not this venv's: the reference venv must not see this checkout.
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(directory)], check=True)
        python = directory / "bin" / "python"
        progress(f"{self.name}: pip install (this takes a minute)")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
            check=True,
        )
        (directory / "bench-stamp.json").write_text(json.dumps(packages), encoding="utf-8")
        progress(f"{self.name}: ready")
        return directory


STOCK = ReferenceVenv("stock", "BENCH_STOCK_VENV", _stock_packages, "opentelemetry-instrument")
SEED = ReferenceVenv("seed", "BENCH_SEED_VENV", lambda: {"splight-runner": SEED_VERSION}, "splight-runner")

# The stock distro's venv, as the rows have always called it.
ready = STOCK.ready
ensure = STOCK.ensure
