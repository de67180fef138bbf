"""Next to the upstream ``opentelemetry-distro``: a fresh venv with this tree and the real
``opentelemetry-distro`` installed from the package index, as OpenTelemetry's getting-started
pages install it. ``check`` says which distro ``opentelemetry-instrument`` loads and what to set;
selected with ``OTEL_PYTHON_DISTRO=splight`` every record arrives once and upstream says nothing;
the ``splight`` configurator under the other distro says one line and doubles nothing.
"""

from __future__ import annotations

import os
import subprocess
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

from otlp_sink import OtlpSink
from splight_runner.engine.records import STATUS_EVENT_NAME
from support import engine_env, write_component

ROOT = Path(__file__).resolve().parents[2]
#: opentelemetry-distro is released with opentelemetry-instrumentation: the same version keeps pip
#: from replacing the OpenTelemetry packages this tree was tested with.
UPSTREAM_DISTRO = f"opentelemetry-distro=={version('opentelemetry-instrumentation')}"

COMPONENT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
log = logging.getLogger("app")
for i in range(3):
    log.info("record %d", i)
print("component ran", flush=True)
"""
MESSAGES = [f"record {i}" for i in range(3)]
COMPONENT_OUTPUT = "".join(f"INFO app {message}\n" for message in MESSAGES) + "component ran\n"

#: A fresh venv and a pip install: about 15 s with pip's cache warm, more without.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with this tree and opentelemetry-distro; its bin folder."""
    folder = tmp_path_factory.mktemp("coexistence") / "venv"
    venv.EnvBuilder(with_pip=True).create(folder)
    bin_dir = folder / "bin"
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(ROOT),
            UPSTREAM_DISTRO,
        ],
        env=_clean(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


def _clean(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """``env`` without what would make the scratch venv load the test run's own copy of the runner."""
    return {key: value for key, value in env.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(
    bin_dir: Path, args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**_clean(env), "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _instrument(bin_dir: Path, main: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run(bin_dir, [str(bin_dir / "opentelemetry-instrument"), "python", main.name], env, cwd=main.parent)


def _first_distro(bin_dir: Path) -> str:
    """The distro opentelemetry-instrument loads when none is named: the first entry point it finds."""
    code = "from importlib.metadata import entry_points as e; print(next(iter(e(group='opentelemetry_distro'))).name)"
    return _run(bin_dir, [str(bin_dir / "python"), "-c", code], {}).stdout.strip()


def _runner_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("splight-runner:")]


def test_check_lists_every_distro_and_configurator_and_says_which_loads(scratch, dev_engine):
    env = engine_env(dev_engine, COMPONENT_ID="C1")
    done = _run(scratch, [str(scratch / "splight-runner"), "check"], env)
    assert done.returncode == 0, done.stderr
    distros = next(line for line in done.stdout.splitlines() if line.startswith("Distros:"))
    configurators = next(line for line in done.stdout.splitlines() if line.startswith("Configurators:"))
    assert "distro (opentelemetry-distro " in distros and "splight (splight-runner " in distros
    assert "configurator (opentelemetry-distro " in configurators and "splight (splight-runner " in configurators
    first = _first_distro(scratch)
    assert f"opentelemetry-instrument loads: distro {first!r}" in done.stdout
    # Two distros installed: whichever comes first today, the advice is to name splight.
    assert "set OTEL_PYTHON_DISTRO=splight" in done.stdout

    done = _run(scratch, [str(scratch / "splight-runner"), "check"], {**env, "OTEL_PYTHON_DISTRO": "splight"})
    assert done.returncode == 0, done.stderr
    assert "loads: distro 'splight', configurator 'splight': ships to the Splight Engine" in done.stdout
    assert "to use splight-runner" not in done.stdout


def test_selected_by_otel_python_distro_every_record_arrives_once_and_upstream_says_nothing(
    scratch, dev_engine, tmp_path
):
    main = write_component(tmp_path, COMPONENT)
    with OtlpSink() as sink:
        env = engine_env(
            dev_engine,
            COMPONENT_ID="C1",
            OTEL_PYTHON_DISTRO="splight",
            OTEL_LOGS_EXPORTER="splight,otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{sink.endpoint}/v1/logs",
        )
        done = _instrument(scratch, main, env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == COMPONENT_OUTPUT
        assert done.stderr == ""  # no "Configuration of configurator not loaded ..." from upstream's loader
        assert dev_engine.wait_for(lambda e: e.statuses)
        assert [record["message"] for record in dev_engine.records] == MESSAGES
        assert dev_engine.statuses == [("C1", "Succeeded")]
        assert sink.wait_for(lambda s: any(log.event_name == STATUS_EVENT_NAME for log in s.logs))
        assert [log.body for log in sink.logs if log.event_name != STATUS_EVENT_NAME] == MESSAGES


@pytest.mark.parametrize("distro", ["distro", None], ids=["under-the-upstream-distro", "configurator-alone"])
def test_the_splight_configurator_alone_works_or_says_one_line_and_never_doubles(scratch, dev_engine, tmp_path, distro):
    main = write_component(tmp_path, COMPONENT)
    loaded = distro or _first_distro(scratch)
    with OtlpSink() as sink:
        env = engine_env(
            dev_engine,
            COMPONENT_ID="C1",
            OTEL_PYTHON_CONFIGURATOR="splight",
            OTEL_LOGS_EXPORTER="splight,otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        )
        if distro:
            env["OTEL_PYTHON_DISTRO"] = distro
        done = _instrument(scratch, main, env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == COMPONENT_OUTPUT
        if loaded == "splight":
            assert dev_engine.wait_for(lambda e: e.statuses)
            assert [record["message"] for record in dev_engine.records] == MESSAGES
            assert sink.wait_for(lambda s: any(log.event_name == STATUS_EVENT_NAME for log in s.logs))
            assert [log.body for log in sink.logs if log.event_name != STATUS_EVENT_NAME] == MESSAGES
        else:
            lines = _runner_lines(done.stderr)
            assert len(lines) == 1, done.stderr
            assert "needs the splight distro" in lines[0] and "OTEL_PYTHON_DISTRO=splight" in lines[0]
            assert "Traceback" not in done.stderr
            # Nothing exported twice, nor at all: the exporters flush before the process ends.
            assert dev_engine.records == [] and sink.logs == []
