"""deploy/: the images are built from this checkout, and their install steps work.

No Docker engine runs on the project's machines, so the RUN steps of deploy/Dockerfile
are run here by a small reading of the Dockerfile: every stage gets a scratch folder
that stands for the image's file system (absolute image paths such as /wheels or /app
in a RUN step are mapped into it) and a scratch venv made with the Python running the
tests stands for the image's Python (its bin/ first on PATH, so `pip` and
`splight-runner` are the venv's). COPY copies from the build context (the repository
root), from an earlier stage or from a named build context. A step that needs the
image's Debian (`apt-get`) would be skipped; deploy/Dockerfile has none.
A broken wheel build, `pip install` or `splight-runner --version` fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COLLECTOR_DOCKERFILE = DEPLOY / "Dockerfile.collector"
COMPOSE = DEPLOY / "compose.yaml"
DEMO_COMPONENT = REPO / "examples" / "demo"

# Top folders of the host that RUN steps may name as they are (tools, not image content).
HOST_FOLDERS = {"usr", "bin", "sbin", "lib", "lib64", "etc", "dev", "proc", "sys", "tmp"}
# What a RUN step keeps from the test's environment: how to reach the package index.
PASSED_ENV = ("PIP_", "SSL_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@dataclass
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comment lines dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines inside a continuation too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, rest = joined.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instructions.append(Instruction(keyword.upper(), flags, rest, start))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def substitute(text: str, env: dict[str, str]) -> str:
    """Docker's ${VAR}, ${VAR:-default} and $VAR in FROM, COPY, WORKDIR, ENV."""

    def value(match: re.Match[str]) -> str:
        name = match.group("name") or match.group("plain")
        default = match.group("default")
        found = env.get(name, "")
        return found if found or default is None else default

    pattern = r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}|\$(?P<plain>\w+)"
    return re.sub(pattern, value, text)


def split_stage(args: str) -> tuple[str, str | None]:
    parts = args.split()
    if len(parts) == 3 and parts[1].lower() == "as":
        return parts[0], parts[2]
    assert len(parts) == 1, f"FROM {args!r}"
    return parts[0], None


@dataclass
class Stage:
    name: str
    root: Path
    venv: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    def host(self, image_path: str) -> Path:
        path = image_path if image_path.startswith("/") else f"{self.workdir.rstrip('/')}/{image_path}"
        return self.root / path.lstrip("/")


def map_image_paths(command: str, root: Path) -> str:
    """Absolute image paths in a shell command, moved under the stage's scratch folder."""

    def move(match: re.Match[str]) -> str:
        top = match.group("top")
        return match.group(0) if top in HOST_FOLDERS else f"{root}/{top}"

    return re.sub(r"(?<![\w.$}/:-])/(?P<top>[A-Za-z0-9_.-]+)", move, command)


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def make_venv(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)


def run_dockerfile(
    dockerfile: Path, target: str, scratch: Path, contexts: dict[str, Path], build_args: dict[str, str] | None = None
) -> dict[str, Stage]:
    """Run the stages of `dockerfile` up to `target` (every stage before it too) in `scratch`."""
    instructions = parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    for ins in instructions:
        if ins.keyword == "ARG" and stage is None:
            name, _, default = ins.args.partition("=")
            global_args[name] = (build_args or {}).get(name, default)
            continue
        if ins.keyword == "FROM":
            if stage is not None and stage.name == target:
                break
            image, name = split_stage(substitute(ins.args, global_args))
            name = name or f"stage{len(stages)}"
            root = scratch / name
            if image in stages:  # FROM an earlier stage: its files and its Python
                base = stages[image]
                shutil.copytree(base.root, root, symlinks=True)
                stage = Stage(name, root, base.venv, dict(base.env), base.workdir, base.entrypoint, base.cmd)
            else:
                assert image.startswith("python:"), f"{dockerfile.name}:{ins.line}: FROM {image}: not a Python image"
                root.mkdir(parents=True)
                venv = scratch / f"{name}-venv"
                make_venv(venv)
                stage = Stage(name, root, venv)
            stages[name] = stage
            continue
        assert stage is not None, f"{dockerfile.name}:{ins.line}: {ins.keyword} before FROM"
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            stage.env[name] = (build_args or {}).get(name, global_args.get(name, default))
        elif ins.keyword == "ENV":
            for item in shlex.split(ins.args):
                name, _, value = item.partition("=")
                stage.env[name] = substitute(value, stage.env)
        elif ins.keyword == "WORKDIR":
            stage.workdir = substitute(ins.args, stage.env)
            stage.host(stage.workdir).mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "COPY":
            copy(ins, stage, stages, contexts)
        elif ins.keyword == "RUN":
            run_step(ins, stage, home, dockerfile)
        elif ins.keyword == "ENTRYPOINT":
            stage.entrypoint = exec_form(ins.args)
            assert stage.entrypoint, f"{dockerfile.name}:{ins.line}: ENTRYPOINT is not in exec form"
        elif ins.keyword == "CMD":
            stage.cmd = exec_form(ins.args)
            assert stage.cmd, f"{dockerfile.name}:{ins.line}: CMD is not in exec form"
        elif ins.keyword in ("EXPOSE", "VOLUME", "HEALTHCHECK", "USER", "LABEL"):
            pass
        else:
            raise AssertionError(f"{dockerfile.name}:{ins.line}: {ins.keyword} is not understood by this test")
    assert target in stages, f"{dockerfile.name} has no stage {target!r}"
    return stages


def copy(ins: Instruction, stage: Stage, stages: dict[str, Stage], contexts: dict[str, Path]) -> None:
    *sources, dest = substitute(ins.args, stage.env).split()
    origin = ins.flags.get("from")
    if origin is None:
        base = contexts["."]
    elif origin in stages:
        base = stages[origin].root
    else:
        assert origin in contexts, f"COPY --from={origin}: no such stage or build context"
        base = contexts[origin]
    target = stage.host(dest)
    as_folder = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
    for source in sources:
        src = base / source.lstrip("/")
        assert src.exists(), f"line {ins.line}: COPY source {source} does not exist (in {base.name})"
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            out = target / src.name if as_folder else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)


def run_step(ins: Instruction, stage: Stage, home: Path, dockerfile: Path) -> None:
    if "apt-get" in ins.args:
        stage.skipped.append(ins.args)  # needs the image's Debian; checked on its own below
        return
    env = {name: value for name, value in os.environ.items() if any(name.startswith(prefix) for prefix in PASSED_ENV)}
    env.update(stage.env)
    env.update({"PATH": f"{stage.venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "VIRTUAL_ENV": str(stage.venv)})
    command = map_image_paths(ins.args, stage.root)
    cwd = stage.host(stage.workdir)
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, (
        f"{dockerfile.name}:{ins.line} RUN failed (exit {result.returncode}):\n{command}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    stage.ran.append(result.stdout)


def source_version() -> str:
    """The version hatch reads (pyproject's [tool.hatch.version] path) from this checkout."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    path = re.search(r'\[tool\.hatch\.version\]\s*\npath\s*=\s*"([^"]+)"', pyproject).group(1)
    return re.search(r'__version__\s*=\s*"([^"]+)"', (REPO / path).read_text(encoding="utf-8")).group(1)


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stage]:
    """deploy/Dockerfile run up to the component image, with examples/demo as the component."""
    scratch = tmp_path_factory.mktemp("dockerfile")
    return run_dockerfile(DOCKERFILE, "app", scratch, {".": REPO, "component": DEMO_COMPONENT})


def test_wheel_stage_builds_a_wheel_of_this_checkout(app_image: dict[str, Stage]) -> None:
    wheels = list((app_image["wheel"].root / "wheels").glob("splight_runner-*.whl"))
    assert [w.name for w in wheels] == [f"splight_runner-{source_version()}-py3-none-any.whl"]


def _pip_show(python: Path, name: str) -> str:
    return subprocess.run(
        [str(python), "-m", "pip", "show", "-f", name], capture_output=True, text=True, check=False
    ).stdout


def test_runner_stage_installs_that_wheel_in_a_venv_of_its_own(app_image: dict[str, Stage]) -> None:
    runner = app_image["runner"]
    # The step's own `splight-runner --version` printed this checkout's version.
    assert any(f"splight-runner {source_version()}" in out for out in runner.ran), runner.ran
    own = runner.root / "opt" / "splight-runner" / "bin" / "python"
    shown = _pip_show(own, "splight-runner")
    assert f"Version: {source_version()}" in shown
    # A regular install of the wheel (not editable, not pointing back at the checkout).
    assert "__editable__" not in shown and str(REPO) not in shown
    # Nothing of the runner's in the image's Python, the component's.
    assert _pip_show(runner.venv / "bin" / "python", "splight-runner") == ""
    assert _pip_show(runner.venv / "bin" / "python", "opentelemetry-sdk") == ""
    assert not (runner.root / "wheels").exists(), "the wheel is left in the image"
    # Every step ran here: nothing needs the image's Debian.
    assert runner.skipped == []
    # `python` is the image's, `splight-runner` the venv's, and the runner is told which Python is the component's.
    assert runner.env["PATH"].endswith(":/opt/splight-runner/bin")
    assert runner.env["SPLIGHT_RUNNER_PYTHON"] == "python"


PINNED = """
import logging, sys
import google.protobuf
from opentelemetry.version import __version__ as otel
logging.getLogger("pinned").warning("protobuf %s opentelemetry %s", google.protobuf.__version__, otel)
print("runner importable:", any(m.startswith("splight_runner") for m in sys.modules), flush=True)
"""


@pytest.mark.slow
def test_a_component_that_pins_protobuf_and_the_sdk_builds_and_runs(tmp_path_factory, tmp_path) -> None:
    """The image's steps with a component whose requirements pip would refuse next to the runner."""
    from splight_runner.dev_engine.server import DevEngine

    component = tmp_path / "component"
    component.mkdir()
    (component / "requirements.txt").write_text("protobuf==3.20.3\nopentelemetry-sdk==1.27.0\n")
    (component / "main.py").write_text(PINNED)
    stages = run_dockerfile(DOCKERFILE, "app", tmp_path_factory.mktemp("pinned"), {".": REPO, "component": component})
    app = stages["app"]
    image_python = app.venv / "bin" / "python"
    runner = app.root / "opt" / "splight-runner" / "bin" / "splight-runner"
    with DevEngine() as engine:
        env = {
            "PATH": f"{image_python.parent}:/usr/bin:/bin:{runner.parent}",
            "HOME": str(tmp_path),
            "SPLIGHT_RUNNER_PYTHON": app.env["SPLIGHT_RUNNER_PYTHON"],
            "SPLIGHT_PLATFORM_API_HOST": engine.url,
            "SPLIGHT_ACCESS_ID": "dev-access",
            "SPLIGHT_SECRET_KEY": "dev-secret",
            "SPLIGHT_RUNNER_SECRETS_DIR": "/nonexistent-splight-secrets",
        }
        done = subprocess.run(
            ["splight-runner", "run-component", str(app.root / "app" / "main.py"), "--component-id=C1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "runner importable: False" in done.stdout
        assert [r["message"] for r in engine.records] == ["protobuf 3.20.3 opentelemetry 1.27.0"]
        assert engine.statuses == [("C1", "Succeeded")]


def test_component_image_runs_the_runner_as_pid_1_in_exec_form(app_image: dict[str, Stage]) -> None:
    """No init and no shell in front: the runner is PID 1 (its reaping and signals: tests/supervisor)."""
    app = app_image["app"]
    assert (app.root / "app" / "main.py").is_file()
    assert app.entrypoint is None and app_image["runner"].entrypoint is None
    assert app.cmd == ["splight-runner", "run-component", "/app/main.py"]


def test_no_dockerfile_installs_splight_runner_from_the_package_index() -> None:
    for dockerfile in (DOCKERFILE, COLLECTOR_DOCKERFILE):
        for ins in parse_dockerfile(dockerfile.read_text(encoding="utf-8")):
            if ins.keyword != "RUN" or "pip install" not in ins.args:
                continue
            for requirement in re.findall(r"pip install\s+([^;&|]+)", ins.args):
                parts = shlex.split(requirement)
                mentions = [part for part in parts if "splight-runner" in part or "splight_runner" in part]
                assert all("@ file://" in part or part.endswith(".whl") for part in mentions), (
                    f"{dockerfile.name}:{ins.line} installs splight-runner from an index: {requirement}"
                )


def test_compose_builds_only_stages_that_exist() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    stages = {split_stage(ins.args)[1] for ins in instructions if ins.keyword == "FROM"}
    text = COMPOSE.read_text(encoding="utf-8")
    for dockerfile in re.findall(r"dockerfile:\s*(\S+)", text):
        assert (REPO / dockerfile).is_file(), dockerfile
    for target in re.findall(r"target:\s*(\S+)", text):
        assert target in stages, f"compose.yaml builds target {target!r}, which deploy/Dockerfile does not have"


def test_collector_dockerfile_copies_what_exists_and_pins_the_manifest_builder() -> None:
    instructions = parse_dockerfile(COLLECTOR_DOCKERFILE.read_text(encoding="utf-8"))
    for ins in instructions:
        if ins.keyword == "COPY" and "from" not in ins.flags:
            *sources, _ = ins.args.split()
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile.collector:{ins.line}: {source} does not exist"
    # The builder version the image extracts with sed is the one build.py reads.
    build_step = next(ins for ins in instructions if ins.keyword == "RUN" and "builder" in ins.args)
    sed = re.search(r"\$\((sed .*?manifest\.yaml)", build_step.args).group(1)
    extracted = subprocess.run(
        ["/bin/sh", "-c", sed], cwd=REPO / "collector-config", capture_output=True, text=True, check=True
    ).stdout.split()[0]
    spec = importlib.util.spec_from_file_location("collector_build", REPO / "collector-config" / "build.py")
    collector_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collector_build)
    _, version = collector_build.parse_manifest((REPO / "collector-config" / "manifest.yaml").read_text())
    assert extracted == version
    assert instructions[-1].keyword == "CMD" and exec_form(instructions[-1].args)
    assert any(ins.keyword == "ENTRYPOINT" and exec_form(ins.args) for ins in instructions)
