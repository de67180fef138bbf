"""What the bootstrap finds of OpenTelemetry's entry points, read from the dist-info folders on the path."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest

from splight_runner.bootstrap.splight_capture import entry_points


def _distribution(folder: Path, name: str, entry_points_txt: str | None) -> None:
    info = folder / f"{name}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Name: {name}\n")
    if entry_points_txt is not None:
        (info / "entry_points.txt").write_text(entry_points_txt)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that is the whole of ``sys.path``, plus one path entry that is not a folder."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    (tmp_path / "lib.zip").write_bytes(b"")
    monkeypatch.setattr(sys, "path", [str(folder), str(tmp_path / "lib.zip"), str(tmp_path / "missing")])
    return folder


INSTRUMENTOR = "[opentelemetry_instrumentor]\nopenai = openinference.instrumentation.openai:OpenAIInstrumentor\n"


def test_a_third_party_instrumentor_is_found_beside_opentelemetry_instrumentation(site: Path) -> None:
    _distribution(site, "opentelemetry_instrumentation-0.66b2", "[console_scripts]\nopentelemetry-instrument = x:y\n")
    _distribution(site, "openinference_instrumentation_openai-0.1.0", INSTRUMENTOR)
    _distribution(site, "requests-2.32.0", None)

    found = entry_points._scan()

    assert found["opentelemetry_instrumentor"] == {"openai"}
    assert found["console_scripts"] == {"opentelemetry-instrument"}


def test_without_any_opentelemetry_distribution_no_file_is_opened(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing could load what it declares: the instrumentation loader itself is not installed.
    _distribution(site, "openinference_instrumentation_openai-0.1.0", INSTRUMENTOR)
    _distribution(site, "pandas-2.2.0", "[pandas_plotting_backends]\nmatplotlib = pandas:plotting\n")
    opened: list[str] = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))

    assert entry_points._scan() == {}
    assert opened == []


def test_egg_info_counts_and_names_are_compared_without_case(site: Path) -> None:
    info = site / "OpenTelemetry_SDK.egg-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[opentelemetry_tracer_provider]\nsdk_tracer_provider = a:b\n")

    assert entry_points._scan() == {"opentelemetry_tracer_provider": {"sdk_tracer_provider"}}
