"""A plain ``pip install splight-runner`` into a fresh venv: lean, OTLP over HTTP, gRPC on request.

The project is installed from this checkout (not editable), as a user would, and run
from that venv against a real dev-engine and a real OTLP/HTTP receiver.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otlp_sink import OtlpSink
from support import engine_env, write_component

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``splight-runner`` of a venv where only ``pip install <this checkout>`` ran; its bin/ folder."""
    venv = tmp_path_factory.mktemp("lean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)],
        check=True,
        timeout=900,
    )
    return venv / "bin"


def test_the_default_install_has_no_grpc(lean: Path) -> None:
    installed = subprocess.run(
        [str(lean / "python"), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    assert "grpcio" not in installed
    assert "opentelemetry-exporter-otlp-proto-grpc" not in installed
    assert "opentelemetry-exporter-otlp-proto-http" in installed


def test_otlp_goes_over_http_by_default(lean: Path, dev_engine, tmp_path) -> None:
    main = write_component(tmp_path / "app", "import logging\nlogging.getLogger('app').warning('over http')\n")
    with OtlpSink() as sink:
        env = engine_env(dev_engine, OTEL_LOGS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint)
        done = subprocess.run(
            [str(lean / "splight-runner"), "run-component", str(main), "--component-id=C1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert sink.wait_for(lambda s: any(log.body == "over http" for log in s.logs))


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"])
def test_grpc_without_the_extra_is_one_line_naming_it(variable: str, lean: Path, dev_engine, tmp_path) -> None:
    main = write_component(tmp_path / "app", "print('never runs')\n")
    env = engine_env(dev_engine, OTEL_LOGS_EXPORTER="splight,otlp", **{variable: "grpc"})

    done = subprocess.run(
        [str(lean / "splight-runner"), "run-component", str(main), "--component-id=C1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert done.stderr == (
        f"splight-runner: {variable}=grpc: OTLP over gRPC is not installed "
        "(pip install 'splight-runner[grpc]'); http/protobuf needs nothing\n"
    )
    assert "never runs" not in done.stdout
