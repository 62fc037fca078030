"""Typed configuration read once from the environment, with loopback defaults.

Every setting comes from one environment variable (prefix ``FRAUD_`` for ours; standard names such as
``OTEL_EXPORTER_OTLP_ENDPOINT`` are kept as their owners spell them). A bad value fails fast with a
`ConfigError` that names the variable and says what was wrong. An empty variable counts as unset.

A service declares its own frozen dataclass with `env_field` and reads it with ``from_env()``::

    @dataclass(frozen=True)
    class IngestConfig(EnvConfig):
        grpc_port: int = env_field("FRAUD_INGEST_GRPC_PORT", 50051)
        dedupe_window_s: float = env_field("FRAUD_INGEST_DEDUPE_WINDOW_S", 120.0)

    config = IngestConfig.from_env()
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration variable is missing or has a value that cannot be used."""


def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return value if value else None


def env_str(name: str, default: str = "", *, required: bool = False, env: Mapping[str, str] | None = None) -> str:
    """Reads a string variable.

    Args:
        name: Environment variable name.
        default: Value used when the variable is unset or empty.
        required: Raise instead of using the default when unset.
        env: Mapping to read instead of ``os.environ`` (tests).

    Returns:
        The value, stripped of surrounding whitespace.

    Raises:
        ConfigError: If ``required`` and the variable is unset or empty.
    """
    raw = _raw(name, env)
    if raw is None:
        if required:
            raise ConfigError(f"{name} is required but not set")
        return default
    return raw.strip()


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Reads an integer variable, optionally bounded (inclusive).

    Raises:
        ConfigError: If the value is not an integer or lies outside the bounds.
    """
    raw = _raw(name, env)
    if raw is None:
        value = default
    else:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def env_port(name: str, default: int, *, env: Mapping[str, str] | None = None) -> int:
    """Reads a TCP port (0 means: let the OS pick a free one).

    Raises:
        ConfigError: If the value is not an integer in 0..65535.
    """
    return env_int(name, default, minimum=0, maximum=65535, env=env)


def env_float(
    name: str, default: float, *, minimum: float | None = None, env: Mapping[str, str] | None = None
) -> float:
    """Reads a float variable, optionally with an inclusive lower bound.

    Raises:
        ConfigError: If the value is not a number or is below ``minimum``.
    """
    raw = _raw(name, env)
    if raw is None:
        value = default
    else:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value != value:  # NaN compares unequal to itself and would poison every comparison downstream.
        raise ConfigError(f"{name} must be a number, got NaN")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    """Reads a boolean variable (1/0, true/false, yes/no, on/off; case-insensitive).

    Raises:
        ConfigError: If the value is none of the accepted spellings.
    """
    raw = _raw(name, env)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}")


def env_log_level(name: str, default: str = "INFO", *, env: Mapping[str, str] | None = None) -> str:
    """Reads a stdlib logging level name.

    Raises:
        ConfigError: If the value is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.
    """
    value = env_str(name, default, env=env).upper()
    if value not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value


def env_field(name: str, default: T) -> T:
    """Declares a dataclass field read from environment variable ``name`` by `EnvConfig.from_env`.

    Args:
        name: Environment variable name.
        default: Value used when the variable is unset; its field's annotation (str, int, float, bool or
            Path) decides how the variable is parsed.

    Returns:
        A dataclass field (typed as ``T`` so the class body type-checks).
    """
    return typing.cast(T, dataclasses.field(default=default, metadata={"env": name}))


_PARSERS: dict[Any, Any] = {
    str: lambda n, d, e: env_str(n, d, env=e),
    int: lambda n, d, e: env_int(n, d, env=e),
    float: lambda n, d, e: env_float(n, d, env=e),
    bool: lambda n, d, e: env_bool(n, d, env=e),
    Path: lambda n, d, e: Path(env_str(n, str(d), env=e)),
}


@dataclass(frozen=True)
class EnvConfig:
    """Base for frozen configuration dataclasses whose fields are declared with `env_field`."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Builds the configuration from the environment.

        Args:
            env: Mapping to read instead of ``os.environ`` (tests).
            **overrides: Field values that skip the environment (e.g. fields without an env variable).

        Returns:
            The configuration.

        Raises:
            ConfigError: If any variable has an unusable value.
        """
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name in overrides or "env" not in field.metadata:
                continue
            parser = _PARSERS.get(hints[field.name])
            if parser is None:
                raise TypeError(f"{cls.__name__}.{field.name}: unsupported config type {hints[field.name]!r}")
            values[field.name] = parser(field.metadata["env"], field.default, env)
        return cls(**values, **overrides)


def service_env_name(service_name: str) -> str:
    """Returns the upper-case form of a service name used inside variable names (``scoring`` -> ``SCORING``)."""
    return re.sub(r"[^A-Z0-9]+", "_", service_name.upper()).strip("_")


@dataclass(frozen=True)
class CommonConfig:
    """Settings every service needs.

    Attributes:
        service_name: Logical service name (``ingest``, ``scoring``...), used in traces, metrics and logs.
        nats_url: NATS server URL (``FRAUD_NATS_URL``).
        var_dir: Directory for local state: NATS data, dev secrets, SQLite files (``FRAUD_VAR_DIR``).
        otlp_endpoint: OTLP gRPC endpoint for traces; empty turns export off (``OTEL_EXPORTER_OTLP_ENDPOINT``).
        metrics_port: Prometheus port, 0 = pick a free one (``FRAUD_<SERVICE>_METRICS_PORT``).
        log_level: Stdlib logging level name (``FRAUD_LOG_LEVEL``).
    """

    service_name: str
    nats_url: str = "nats://127.0.0.1:4222"
    var_dir: Path = Path("var")
    otlp_endpoint: str = ""
    metrics_port: int = 0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, service_name: str, env: Mapping[str, str] | None = None) -> CommonConfig:
        """Reads the common settings for ``service_name``.

        Raises:
            ConfigError: If any variable has an unusable value.
        """
        if not service_env_name(service_name):
            raise ConfigError(f"service name {service_name!r} must contain letters or digits")
        nats_url = env_str("FRAUD_NATS_URL", cls.nats_url, env=env)
        if not re.match(r"^(nats|tls|ws|wss)://", nats_url):
            raise ConfigError(f"FRAUD_NATS_URL must start with nats://, tls://, ws:// or wss://, got {nats_url!r}")
        return cls(
            service_name=service_name,
            nats_url=nats_url,
            var_dir=Path(env_str("FRAUD_VAR_DIR", str(cls.var_dir), env=env)),
            otlp_endpoint=env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "", env=env),
            metrics_port=env_port(f"FRAUD_{service_env_name(service_name)}_METRICS_PORT", 0, env=env),
            log_level=env_log_level("FRAUD_LOG_LEVEL", "INFO", env=env),
        )

    @property
    def logging_level(self) -> int:
        """The numeric stdlib logging level."""
        return logging.getLevelNamesMapping()[self.log_level]
