"""splight-runner: an OpenTelemetry distro for Splight components."""

__version__ = "2.0.0"
