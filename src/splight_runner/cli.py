"""``splight-runner`` command line (stdlib argparse: the runner adds nothing to the component's dependencies).

Exit codes: the component's own (signal N → 128+N); 2 with one line on stderr for
a usage or configuration mistake, never a traceback.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from splight_runner import __version__
from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner.settings import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

    from splight_runner.supervisor.launch import PipelineSpec

PROG = "splight-runner"
USAGE_ERROR = 2

_DESCRIPTION = """\
Run Splight components under OpenTelemetry and ship their logs and status to the Splight Engine.

commands:
  run-component PATH/main.py --component-id=ID [-- ARGS...]
                        run a component (python main.py --component-id ID ARGS...) in PATH's folder
  run [--component-id=ID] -- CMD [ARGS...]
                        run any command (script.py, -m module, console script) under the distro
  run-agent [-- ARGS...]
                        run splight-agent under the distro (PROCESS_TYPE=agent)
  gateway [--listen HOST:PORT] [--token TOKEN]
                        OTLP/HTTP receiver that turns OTLP logs into Engine calls
  dev-engine [--port N] [--record FILE]
                        local stand-in of the Engine's two endpoints, prints what it receives
  check [--write-test-record]
                        validate the configuration, make one authenticated call to the Engine, and
                        list the OpenTelemetry distros installed
  version               print the version
  help [COMMAND]        show this help, or COMMAND's (same as COMMAND --help)

configuration (environment; a file /etc/config/NAME wins over the variable):
  SPLIGHT_ACCESS_ID, SPLIGHT_SECRET_KEY   Engine credentials
  SPLIGHT_PLATFORM_API_HOST               Engine base URL (default https://api.splight-ai.com)
  API_VERSION                             path prefix (default v3)
  COMPONENT_ID / COMPUTE_NODE_ID / AGENT_ID   the process id
  PROCESS_TYPE                            sender_type of every record
  OTEL_LOGS_EXPORTER                      splight (default), console, otlp, or a list like splight,otlp
  SPLIGHT_RUNNER_RECORD_FIELDS            all (default) or historical: only the eight fields the
                                          Engine has always received
  SPLIGHT_RUNNER_STOP_GRACE               seconds from a stop signal to the runner's exit (default 8)
  OTEL_BLRP_*                             the Engine queue and batches (see the README)
"""

#: Said after every command's options: where the rest of the configuration comes from.
_ENVIRONMENT_EPILOG = (
    "The Engine, the credentials and the exporters come from the environment:\n"
    f"'{PROG} help' lists the variables, README.md explains each."
)


def _new_parser(**kwargs: object) -> argparse.ArgumentParser:
    """An argparse parser that reports a mistake as a one-line ``UsageError``; descriptions keep their line breaks.

    ``argparse`` is imported here and not with this module: ``run-component`` in the
    form the Engine uses never needs it (see :func:`_plain_run_component`).
    """
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{self.prog.removeprefix(PROG + ' ')}: {message}")

    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    kwargs.setdefault("epilog", _ENVIRONMENT_EPILOG)
    return Parser(**kwargs)  # type: ignore[arg-type]


def _split_double_dash(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def _installed_entry_points(group: str) -> set[str]:
    from importlib.metadata import entry_points

    return {entry_point.name for entry_point in entry_points(group=group)}


def _checked_exporters(variable: str, default: str, env: dict[str, str]) -> list[str]:
    """``variable``'s exporters; a name neither built in nor installed is a configuration mistake."""
    chosen, problem = config.checked_exporters(variable, default, _installed_entry_points, env)
    if problem is not None:
        raise config.ConfigError(problem)
    return chosen


def _check_configuration(env: dict[str, str]) -> list[str]:
    """Every setting the runner and the component read, checked now (a mistake is one line before
    the start); the log exporters."""
    exporters = _checked_exporters(names.OTEL_LOGS_EXPORTER, "splight", env)
    grpc_problem = config.otlp_grpc_problem(env)
    if grpc_problem is not None:
        raise config.ConfigError(grpc_problem)
    _checked_exporters(names.OTEL_TRACES_EXPORTER, "none", env)
    _checked_exporters(names.OTEL_METRICS_EXPORTER, "none", env)
    config.delivery_settings(env)
    config.stop_grace(env)
    from splight_runner.engine import records

    records.send_historical_fields_only(config.historical_record_fields(env))
    return exporters


def _pipeline_for(env: dict[str, str]) -> PipelineSpec | None:
    """The supervisor's pipeline, every setting checked now: a mistake is one line before the start."""
    from splight_runner.supervisor.launch import PipelineSpec

    exporters = tuple(_check_configuration(env))
    delivery = config.delivery_settings(env)
    engine = config.engine_settings(env) if "splight" in exporters else None
    process_id = config.require_process_id(env) if engine is not None else config.process_id(env)
    if not exporters:
        return None
    return PipelineSpec(
        exporter_names=exporters,
        engine=engine,
        process_id=process_id,
        process_type=config.process_type(env),
        delivery=delivery,
        code_attributes=config.flag(names.OTEL_PYTHON_LOG_CODE_ATTRIBUTES, env),
    )


def _launch(argv: list[str], cwd: str | None, overrides: dict[str, str], *, python: bool = False) -> int:
    from splight_runner.supervisor.launch import Launch, supervise

    config.apply_distro_defaults(os.environ)  # the runner's own pipeline reads them too (OTLP's protocol)
    env = {**os.environ, **overrides}
    pipeline = _pipeline_for(env)
    return supervise(
        Launch(
            argv=argv,
            cwd=cwd,
            env_overrides=overrides,
            pipeline=pipeline,
            export_timeout=config.delivery_settings(env).export_timeout,
            stop_grace=config.stop_grace(env),
            bootstrap_follows_the_runner=python,
        )
    )


_COMPONENT_ID_HELP = (
    "the component's id: the 'id' of every record and the component whose status is updated "
    "(default: COMPONENT_ID, else COMPUTE_NODE_ID, else AGENT_ID)"
)


_PYTHON_HELP = (
    "the Python that runs the component, a path or a command on PATH (default: SPLIGHT_RUNNER_PYTHON, else the "
    "first python3 on PATH when the runner lives in a pipx environment of its own, else the runner's own Python); "
    "its environment needs nothing of the runner's"
)


def _parser_run_component() -> argparse.ArgumentParser:
    parser = _new_parser(
        prog=f"{PROG} run-component",
        usage=f"{PROG} run-component PATH/main.py --component-id=ID [--python PY] [-- ARGS...]",
        description=(
            "Run a Splight component: python main.py --component-id ID ARGS... in PATH's folder, with its\n"
            "logs and status shipped to the Engine. The runner stays its parent: it forwards stop signals,\n"
            "passes its exit code through and sends the final status."
        ),
    )
    parser.add_argument("path", metavar="PATH/main.py", help="the component's main file; it runs in its folder")
    parser.add_argument(
        "--component-id", dest="component_id", metavar="ID", help=_COMPONENT_ID_HELP + "; passed on to the component"
    )
    parser.add_argument("--python", dest="python", metavar="PY", help=_PYTHON_HELP)
    parser.add_argument_group("after --").add_argument(
        "ARGS", nargs="*", default=None, help="more arguments for the component, after '--'"
    )
    return parser


def _component_script(path: str) -> tuple[str, str]:
    """``path``'s folder and file name, or a one-line mistake when it is not a Python file."""
    if os.path.isdir(path):
        raise UsageError(f"run-component: {path} is a folder, not a Python file (give its main.py)")
    if not os.path.isfile(path):
        raise UsageError(f"run-component: {path}: no such file")
    if not path.endswith(".py"):
        raise UsageError(f"run-component: {path} is not a Python file (.py)")
    return os.path.split(os.path.realpath(path))


#: ``run-component``'s options that take a value.
_RUN_COMPONENT_OPTIONS = ("--component-id", "--python")


def _plain_run_component(own: list[str]) -> tuple[str, str | None, str | None] | None:
    """PATH, ``--component-id`` and ``--python`` when ``own`` has the plain form the Engine uses
    (one path; each option at most once, as ``--option=VALUE`` or ``--option VALUE``), else None.

    Anything else (help, a mistake, an abbreviated option) is read by argparse, which
    explains it; the plain form means the same to both, without importing argparse
    at every component's start.
    """
    path: str | None = None
    values: dict[str, str] = {}
    rest = iter(own)
    for arg in rest:
        if not arg.startswith("-"):
            if path is not None:
                return None
            path = arg
            continue
        name, equals, value = arg.partition("=")
        if name not in _RUN_COMPONENT_OPTIONS or name in values:
            return None
        if not equals:
            value = next(rest, "-")
            if value.startswith("-"):
                return None
        values[name] = value
    if path is None:
        return None
    return path, values.get("--component-id"), values.get("--python")


def cmd_run_component(args: list[str]) -> int:
    gc.disable()  # until the start-up is over (``supervisor.launch.start_up_done``)
    own, extra = _split_double_dash(args)
    plain = _plain_run_component(own)
    if plain is None:
        ns = _parser_run_component().parse_args(own)
        if ns.ARGS:
            raise UsageError(f"run-component: unexpected {ns.ARGS[0]!r} (the component's own arguments go after '--')")
        plain = ns.path, ns.component_id, ns.python
    path, given_id, python = plain
    folder, script = _component_script(path)
    overrides = {names.PROCESS_TYPE: os.environ.get(names.PROCESS_TYPE) or "component"}
    if given_id:
        overrides[names.COMPONENT_ID] = given_id
    component_id = given_id or config.process_id({**os.environ, **overrides})
    argv = [_component_python(python), script]
    if component_id:
        argv += ["--component-id", component_id]
    return _launch(argv + extra, folder, overrides, python=True)


def _component_python(option: str | None = None) -> str:
    from splight_runner.supervisor.interpreter import component_interpreter

    return component_interpreter(option, os.environ).path


def _command_argv(command: list[str], what: str = "run") -> list[str]:
    first = command[0]
    if first == "-m" or first.endswith(".py"):
        return [_component_python(), *command]
    from splight_runner.supervisor.spawn import which

    resolved = which(first)
    if resolved is None:
        raise UsageError(f"{what}: {first}: command not found")
    return [resolved, *command[1:]]


def _parser_run() -> argparse.ArgumentParser:
    parser = _new_parser(
        prog=f"{PROG} run",
        usage=f"{PROG} run [--component-id=ID] -- CMD [ARGS...]",
        description=(
            "Run any command under the distro, supervised as run-component does: CMD is script.py\n"
            "(run with this Python), -m MODULE, or a command on PATH (a console script)."
        ),
    )
    parser.add_argument("--component-id", dest="component_id", metavar="ID", help=_COMPONENT_ID_HELP)
    parser.add_argument_group("after --").add_argument(
        "CMD", nargs="*", default=None, help="the command and its arguments, after '--'"
    )
    return parser


def cmd_run(args: list[str]) -> int:
    own, command = _split_double_dash(args)
    ns = _parser_run().parse_args(own)
    if ns.CMD:
        raise UsageError(f"run: unexpected {ns.CMD[0]!r} (the command goes after '--')")
    if not command:
        raise UsageError("run: nothing to run; usage: splight-runner run [--component-id=ID] -- CMD [ARGS...]")
    overrides = {names.PROCESS_TYPE: os.environ.get(names.PROCESS_TYPE) or "component"}
    if ns.component_id:
        overrides[names.COMPONENT_ID] = ns.component_id
    return _launch(_command_argv(command), None, overrides)


def _parser_run_agent() -> argparse.ArgumentParser:
    parser = _new_parser(
        prog=f"{PROG} run-agent",
        usage=f"{PROG} run-agent [-- ARGS...]",
        description=(
            "Run splight-agent (pip install splight-agent) under the distro with PROCESS_TYPE=agent:\n"
            "its records are sent with its id (COMPUTE_NODE_ID or AGENT_ID), and never a status."
        ),
    )
    parser.add_argument_group("after --").add_argument(
        "ARGS", nargs="*", default=None, help="arguments for splight-agent, after '--'"
    )
    return parser


def cmd_run_agent(args: list[str]) -> int:
    own, extra = _split_double_dash(args)
    ns = _parser_run_agent().parse_args(own)
    if ns.ARGS:
        raise UsageError(f"run-agent: unexpected {ns.ARGS[0]!r} (splight-agent's arguments go after '--')")
    from splight_runner.supervisor.spawn import which

    if which("splight-agent") is None:
        raise config.ConfigError("run-agent: splight-agent is not installed (pip install splight-agent)")
    overrides = {names.PROCESS_TYPE: "agent"}
    return _launch(_command_argv(["splight-agent", *extra], "run-agent"), None, overrides)


def _parser_dev_engine() -> argparse.ArgumentParser:
    parser = _new_parser(
        prog=f"{PROG} dev-engine",
        description=(
            "A local stand-in of the Engine's two endpoints (logs/write and update-status): it checks the\n"
            "credentials and every record as the Engine does, and prints what it receives, one line each\n"
            "(a first line names the columns). Stop it with Ctrl-C or SIGTERM."
        ),
        epilog=None,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", metavar="ADDRESS", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, metavar="N", help="TCP port to listen on (default 8080; 0: any free one)"
    )
    parser.add_argument("--record", metavar="FILE", help="also append what arrives to FILE, as JSON lines")
    parser.add_argument(
        "--access-id",
        default=os.environ.get(names.SPLIGHT_ACCESS_ID) or "dev-access",
        metavar="ID",
        help="the access id it accepts (default: SPLIGHT_ACCESS_ID, else dev-access)",
    )
    parser.add_argument(
        "--secret-key",
        default=os.environ.get(names.SPLIGHT_SECRET_KEY) or "dev-secret",
        metavar="KEY",
        help="the secret key it accepts (default: SPLIGHT_SECRET_KEY, else dev-secret)",
    )
    parser.add_argument(
        "--api-version",
        default=os.environ.get(names.API_VERSION) or config.DEFAULT_API_VERSION,
        metavar="VERSION",
        help=f"the path prefix it serves (default: API_VERSION, else {config.DEFAULT_API_VERSION})",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the listening line, not what arrives")
    return parser


def cmd_dev_engine(args: list[str]) -> int:
    ns = _parser_dev_engine().parse_args(args)
    if not 0 <= ns.port <= 65535:
        raise UsageError(f"dev-engine: --port {ns.port} is not a TCP port")
    from splight_runner.dev_engine import server as dev_engine

    return dev_engine.run(
        ns.host,
        ns.port,
        access_id=ns.access_id,
        secret_key=ns.secret_key,
        api_version=ns.api_version,
        record_path=ns.record,
        quiet=ns.quiet,
    )


def _gateway_module() -> ModuleType:
    try:
        from splight_runner.gateway import command as gateway
    except ImportError as error:
        raise config.ConfigError(
            f"gateway: needs the optional extra (pip install 'splight-runner[gateway]'): {error}"
        ) from None
    return gateway


def cmd_gateway(args: list[str]) -> int:
    gateway = _gateway_module()
    if not {"-h", "--help"} & set(args):
        from splight_runner.engine import records

        records.send_historical_fields_only(config.historical_record_fields())
    return gateway.main(args)


#: The message of the record ``check --write-test-record`` writes.
TEST_RECORD_MESSAGE = "splight-runner check: test record, safe to ignore"
#: Its logger name.
TEST_RECORD_NAME = "splight_runner.check"


def _parser_check() -> argparse.ArgumentParser:
    parser = _new_parser(
        prog=f"{PROG} check",
        description=(
            "Check the configuration as run-component would, make one authenticated call to the Engine\n"
            "(an empty logs/write), and list the OpenTelemetry distros and configurators installed: which\n"
            "one opentelemetry-instrument loads, and what to set to make it splight-runner.\n"
            "Exit 0: the Engine took the call; 1: it did not; 2: a configuration mistake."
        ),
    )
    parser.add_argument(
        "--write-test-record",
        action="store_true",
        help=(
            f"instead of the empty call, write one INFO record ('{TEST_RECORD_MESSAGE}', logger "
            f"{TEST_RECORD_NAME}) with exactly the fields this version sends (see SPLIGHT_RUNNER_RECORD_FIELDS), "
            "under the process id, to see that the Engine takes them"
        ),
    )
    return parser


def _test_record(process_id: str, process_type: str) -> dict[str, object]:
    from splight_runner.engine import records

    return records.engine_record(
        process_id=process_id,
        sender_type=process_type,
        scope_name=TEST_RECORD_NAME,
        body=TEST_RECORD_MESSAGE,
        severity_number=9,
        severity_text="INFO",
        attributes=None,
        timestamp_ns=None,
    )


def _print_distros() -> None:
    from splight_runner.component.distro import selection

    chosen = selection()

    def listed(plugins: list) -> str:
        return ", ".join(f"{plugin.name} ({plugin.distribution})" for plugin in plugins) or "none"

    print(f"Distros:      {listed(chosen.distros)}")
    print(f"Configurators: {listed(chosen.configurators)}")

    def named(kind: str, name: str | None) -> str:
        return f"{kind} {name!r}" if name else f"no {kind}"

    loads = f"{named('distro', chosen.distro)}, {named('configurator', chosen.configurator)}"
    if chosen.is_splight:
        verdict = "ships to the Splight Engine"
    else:
        verdict = "not splight-runner: nothing reaches the Splight Engine"
    print(f"opentelemetry-instrument loads: {loads}: {verdict}")
    advice = chosen.advice(os.environ)
    if advice:
        print(f"  to use splight-runner: {advice}")


def cmd_check(args: list[str]) -> int:
    ns = _parser_check().parse_args(args)
    from splight_runner.engine.client import EngineClient, EngineError

    env = dict(os.environ)
    exporters = _check_configuration(env)
    engine = config.engine_settings()
    process_id = config.process_id()
    if ns.write_test_record and process_id is None:
        raise config.ConfigError(
            "check --write-test-record: no process id to write the record under: set "
            + ", ".join(names.PROCESS_ID_VARIABLES[:-1])
            + f" or {names.PROCESS_ID_VARIABLES[-1]}"
        )
    print(f"Engine:       {engine.base_url}")
    print(f"Access id:    {engine.access_id}")
    print(f"Process id:   {process_id or '(not set: run-component needs --component-id or COMPONENT_ID)'}")
    print(f"Process type: {config.process_type()}")
    print(f"Logs go to:   {', '.join(exporters) or 'nowhere (OTEL_LOGS_EXPORTER=none)'}")
    bootstrap_loads = _print_component_python()
    _print_distros()
    if process_id is not None and ns.write_test_record:
        import json

        record = _test_record(process_id, config.process_type())
        body = json.dumps({"records": [record]}).encode()
    else:
        record, body = None, b'{"records":[]}'
    client = EngineClient(engine, timeout=10.0)
    try:
        client.write_logs(body)
    except EngineError as error:
        if error.status == 400 and record is None:
            print("Engine:       reachable, credentials accepted")
            return 0
        print(f"Engine:       {error}", file=sys.stderr)
        if error.status in (401, 403):
            print(f"{PROG}: check: the Engine rejected the credentials", file=sys.stderr)
        elif record is not None and error.status is not None:
            print(f"{PROG}: check: the Engine refused the test record ({', '.join(record)})", file=sys.stderr)
        return 1
    finally:
        client.close()
    print("Engine:       reachable, credentials accepted")
    if record is not None:
        print(f"Test record:  written under {process_id}, the Engine took its fields: {', '.join(record)}")
    if not bootstrap_loads:
        print(
            f"{PROG}: check: the component's Python cannot load the bootstrap: nothing would be captured",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_component_python() -> bool:
    """Which Python ``run-component`` would start, why, and whether it loads the bootstrap."""
    from splight_runner.supervisor.interpreter import component_interpreter, probe
    from splight_runner.supervisor.launch import BOOTSTRAP_DIR

    interpreter = component_interpreter(None, os.environ)
    loads, what = probe(interpreter.path, BOOTSTRAP_DIR)
    print(f"Python:       {interpreter.path} ({interpreter.why})")
    print(f"              {what}")
    return loads


def _help(args: list[str]) -> int:
    if not args:
        print(f"usage: {PROG} COMMAND [ARGS...]\n\n{_DESCRIPTION}")
        return 0
    if len(args) > 1:
        raise UsageError(f"help: one command at a time (try '{PROG} help')")
    command = args[0]
    if command == "gateway":
        return _gateway_help()
    parser = _PARSERS.get(command)
    if parser is not None:
        print(parser().format_help(), end="")
        return 0
    if command in ("version", "help"):
        print(f"usage: {PROG} {command}\n\n{_SIMPLE_HELP[command]}")
        return 0
    raise UsageError(f"help: unknown command {command!r} (try '{PROG} help')")


def _gateway_help() -> int:
    try:
        _gateway_module().main(["--help"])
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    return 0


_SIMPLE_HELP = {
    "version": "Print the version. Needs no environment.",
    "help": "Show the list of commands, or one command's help: help COMMAND (same as COMMAND --help).",
}

_PARSERS = {
    "run-component": _parser_run_component,
    "run": _parser_run,
    "run-agent": _parser_run_agent,
    "dev-engine": _parser_dev_engine,
    "check": _parser_check,
}

COMMANDS = {
    "run-component": cmd_run_component,
    "run": cmd_run,
    "run-agent": cmd_run_agent,
    "gateway": cmd_gateway,
    "dev-engine": cmd_dev_engine,
    "check": cmd_check,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"usage: {PROG} COMMAND [ARGS...]  (try '{PROG} help')", file=sys.stderr)
        return USAGE_ERROR
    command = COMMANDS.get(argv[0])
    try:
        if argv[0] in ("help", "--help", "-h"):
            return _help(argv[1:])
        if argv[0] in ("version", "--version", "-V"):
            if "--help" in argv[1:] or "-h" in argv[1:]:
                return _help(["version"])
            print(f"{PROG} {__version__}")
            return 0
        if command is None:
            raise UsageError(f"unknown command {argv[0]!r} (try '{PROG} help')")
        return command(argv[1:])
    except config.ConfigError as error:  # UsageError included
        print(f"{PROG}: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
