#!/usr/bin/env python3
"""Build the splight-otelcol collector distribution from manifest.yaml.

Standard library only. Steps:

1. install the OpenTelemetry Collector Builder (ocb) with ``go install`` at the
   core collector version the manifest pins (its ``telemetry`` entry,
   ``go.opentelemetry.io/collector/service vX``) into ``<cache>/tools/``;
2. run the builder on a copy of the manifest in a scratch folder;
3. publish the binary under ``<cache>/<key>/`` where ``<key>`` is the first
   16 hex digits of the sha256 of manifest.yaml, so any edit of the manifest
   means a new build and an unchanged manifest is never built twice.

``<cache>`` is ``$SPLIGHT_COLLECTOR_CACHE`` if set, else
``${XDG_CACHE_HOME:-~/.cache}/splight-runner/collector``.

Progress goes to stderr; the binary's path is the last line on stdout.
``--print-path`` prints the path of an existing build and exits 1 when there
is none. Safe to rerun and to run concurrently (a file lock serialises builds
of the same manifest). A cold build downloads a few hundred MB of Go modules
and takes several minutes.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MANIFEST = HERE / "manifest.yaml"
BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
CORE_SERVICE_MODULE = "go.opentelemetry.io/collector/service"
BUILD_INFO = "build-info.json"
HEARTBEAT_SECONDS = 30


class BuildError(Exception):
    pass


def progress(message: str) -> None:
    print(f"[collector-build] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    explicit = os.environ.get("SPLIGHT_COLLECTOR_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "splight-runner" / "collector"


def manifest_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _strip_value(raw: str) -> str:
    value = raw.split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def parse_manifest(text: str) -> tuple[str, str]:
    """Return (distribution name, builder version) from the manifest text.

    A deliberately small reader for the two values we need: ``dist.name`` and
    the version of ``go.opentelemetry.io/collector/service`` (the core version
    the builder must match).
    """
    name = None
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            section = stripped.split(":", 1)[0]
            continue
        if section == "dist" and name is None:
            match = re.match(r"\s+name:\s*(.+)$", line)
            if match:
                name = _strip_value(match.group(1))
    match = re.search(r"gomod:\s*['\"]?" + re.escape(CORE_SERVICE_MODULE) + r"\s+(v[0-9][^\s'\"#]*)", text)
    if not name:
        raise BuildError("manifest has no dist.name")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise BuildError(f"manifest dist.name {name!r} is not a plain file name")
    if not match:
        raise BuildError(f"manifest pins no {CORE_SERVICE_MODULE} version (telemetry entry)")
    return name, match.group(1)


def find_go() -> str:
    go = shutil.which("go")
    if go is None:
        for candidate in ("/usr/local/go/bin/go", str(Path.home() / "go" / "bin" / "go")):
            if os.access(candidate, os.X_OK):
                return candidate
        raise BuildError("the Go toolchain ('go') is not on PATH; install Go 1.26 or newer")
    return go


def run_streaming(cmd: list[str], cwd: Path, env: dict[str, str], label: str) -> None:
    """Run cmd, echoing its output as progress and a heartbeat while it is quiet."""
    progress(f"{label}: {' '.join(cmd)}")
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    tail: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                del tail[:-40]
                print(f"    {line}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    while True:
        try:
            proc.wait(timeout=HEARTBEAT_SECONDS)
            break
        except subprocess.TimeoutExpired:
            elapsed = int(time.monotonic() - start)
            progress(f"{label}: still running ({elapsed // 60}m{elapsed % 60:02d}s)")
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    reader.join(timeout=5)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise BuildError(f"{label} failed with exit code {proc.returncode} after {elapsed:.0f}s")
    progress(f"{label}: done in {elapsed:.0f}s")


def go_env(go: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The builder runs `go` from PATH: make it the toolchain we found.
    env["PATH"] = os.pathsep.join([str(Path(go).parent), env.get("PATH", "")])
    env.setdefault("CGO_ENABLED", "0")
    # A project-local GOFLAGS such as -mod=vendor would break module mode here.
    flags = [f for f in env.get("GOFLAGS", "").split() if not f.startswith("-mod=")]
    env["GOFLAGS"] = " ".join(flags)
    if extra:
        env.update(extra)
    return env


def ensure_builder(root: Path, version: str, go: str) -> Path:
    tools = root / "tools" / f"builder-{version}"
    builder = tools / "builder"
    if os.access(builder, os.X_OK):
        progress(f"builder {version} already installed: {builder}")
        return builder
    staging = root / "tools" / f".builder-{version}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    run_streaming(
        [go, "install", f"{BUILDER_MODULE}@{version}"],
        cwd=staging,
        env=go_env(go, {"GOBIN": str(staging)}),
        label=f"installing ocb {version}",
    )
    if not os.access(staging / "builder", os.X_OK):
        raise BuildError("go install finished but produced no 'builder' binary")
    tools.parent.mkdir(parents=True, exist_ok=True)
    if tools.exists():
        shutil.rmtree(tools)
    os.rename(staging, tools)
    return builder


def built_binary(root: Path, key: str, name: str) -> Path | None:
    target = root / key / name
    if (root / key / BUILD_INFO).is_file() and os.access(target, os.X_OK):
        return target
    return None


def build(manifest: Path, verbose: bool, force: bool) -> Path:
    data = manifest.read_bytes()
    name, version = parse_manifest(data.decode("utf-8"))
    key = manifest_key(data)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)

    lock_path = root / f"{key}.lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another build of {key} is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)

        existing = built_binary(root, key, name)
        if existing and not force:
            progress(f"{name} for manifest {key} is already built")
            return existing

        go = find_go()
        go_version = subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout.strip()
        progress(f"building {name} (manifest {key}, collector {version}) with {go_version}")
        progress("a cold build downloads Go modules and compiles for several minutes")
        started = time.monotonic()

        builder = ensure_builder(root, version, go)

        work = root / f"{key}.work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        shutil.copyfile(manifest, work / "manifest.yaml")
        cmd = [str(builder), "--config", "manifest.yaml", "--skip-strict-versioning=false"]
        if verbose:
            cmd.append("--verbose")
        run_streaming(cmd, cwd=work, env=go_env(go), label="ocb build")

        produced = work / "_build" / name
        if not os.access(produced, os.X_OK):
            raise BuildError(f"the builder finished but {produced} is missing")

        final = root / key
        staging = root / f"{key}.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        shutil.move(str(produced), staging / name)
        shutil.copyfile(manifest, staging / "manifest.yaml")
        info = {
            "name": name,
            "manifest_sha256": hashlib.sha256(data).hexdigest(),
            "collector_version": version,
            "go": go_version,
            "build_seconds": round(time.monotonic() - started, 1),
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if final.exists():  # --force: swap the new build in, then drop the old one
            old = root / f"{key}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, final)
        shutil.rmtree(work, ignore_errors=True)
        progress(f"built {name} in {info['build_seconds']:.0f}s")
        return final / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the splight-otelcol collector from manifest.yaml (cached by its sha256).",
    )
    parser.add_argument(
        "--print-path",
        action="store_true",
        help="print the binary's path if it is already built; exit 1 if not (never builds)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    parser.add_argument("--verbose", action="store_true", help="pass --verbose to the builder")
    parser.add_argument(
        "--manifest", type=Path, default=DEFAULT_MANIFEST, help="builder manifest (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    try:
        if args.print_path:
            data = args.manifest.read_bytes()
            name, _ = parse_manifest(data.decode("utf-8"))
            found = built_binary(cache_root(), manifest_key(data), name)
            if found is None:
                # The command as typed from where we are (collector-config/build.py from the repo root).
                script = os.path.relpath(Path(__file__).resolve(), Path.cwd())
                print(f"not built yet: run python3 {shlex.quote(script)}", file=sys.stderr)
                return 1
            print(found)
            return 0
        path = build(args.manifest.resolve(), verbose=args.verbose, force=args.force)
    except BuildError as exc:
        progress(f"error: {exc}")
        return 1
    except OSError as exc:
        progress(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
