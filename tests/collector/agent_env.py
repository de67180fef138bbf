"""The environment a collector running ``collector-config/agent.yaml`` gets in the tests."""

from __future__ import annotations

from pathlib import Path

from support import free_port


def agent_env(
    tmp_path: Path, gateway_port: int, component_id: str, **extra: str
) -> tuple[dict[str, str], dict[str, int]]:
    """Every knob agent.yaml reads, on loopback ports nothing else uses; ``extra`` adds or overrides."""
    taken = {gateway_port}
    ports: dict[str, int] = {}
    for name in ("grpc", "http", "health", "metrics"):
        port = free_port()
        while port in taken:  # each draw is free on its own: two draws can be the same port
            port = free_port()
        taken.add(port)
        ports[name] = port
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SPLIGHT_GATEWAY_ENDPOINT": f"http://127.0.0.1:{gateway_port}",
        "SPLIGHT_COMPONENT_LOG": str(tmp_path / "components.log"),
        "SPLIGHT_COLLECTOR_STORAGE": str(tmp_path / "storage"),
        "SPLIGHT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
        "SPLIGHT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
        "SPLIGHT_HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "SPLIGHT_COLLECTOR_METRICS_PORT": str(ports["metrics"]),
        "SPLIGHT_COLLECTOR_BATCH_TIMEOUT": "200ms",
        "COMPONENT_ID": component_id,
    }
    env.update(extra)
    return env, ports
