from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest

from fraudshared.config import (
    CommonConfig,
    ConfigError,
    EnvConfig,
    env_bool,
    env_field,
    env_float,
    env_int,
    env_port,
    env_str,
    service_env_name,
)


def test_common_config_defaults_are_loopback() -> None:
    config = CommonConfig.from_env("scoring", env={})

    assert config == CommonConfig(
        service_name="scoring",
        nats_url="nats://127.0.0.1:4222",
        var_dir=Path("var"),
        otlp_endpoint="",
        metrics_port=0,
        log_level="INFO",
    )


def test_common_config_reads_every_variable() -> None:
    env = {
        "FRAUD_NATS_URL": "nats://10.0.0.5:4222",
        "FRAUD_VAR_DIR": "/tmp/fraud",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "FRAUD_MODEL_GOVERNANCE_METRICS_PORT": "9102",
        "FRAUD_LOG_LEVEL": "debug",
    }
    config = CommonConfig.from_env("model-governance", env=env)

    assert config.nats_url == "nats://10.0.0.5:4222"
    assert config.var_dir == Path("/tmp/fraud")
    assert config.otlp_endpoint == "http://127.0.0.1:4317"
    assert config.metrics_port == 9102
    assert config.log_level == "DEBUG" and config.logging_level == 10
    with pytest.raises(FrozenInstanceError):
        config.metrics_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FRAUD_SCORING_METRICS_PORT": "abc"}, "FRAUD_SCORING_METRICS_PORT must be an integer, got 'abc'"),
        ({"FRAUD_SCORING_METRICS_PORT": "70000"}, "FRAUD_SCORING_METRICS_PORT must be <= 65535"),
        ({"FRAUD_LOG_LEVEL": "LOUD"}, "FRAUD_LOG_LEVEL must be one of"),
        ({"FRAUD_NATS_URL": "127.0.0.1:4222"}, "FRAUD_NATS_URL must start with nats://"),
    ],
)
def test_common_config_fails_fast_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CommonConfig.from_env("scoring", env=env)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_helpers_parse_and_default() -> None:
    env = {"S": " x ", "I": "42", "F": "0.25", "B": "Yes", "EMPTY": ""}

    assert env_str("S", env=env) == "x"
    assert env_str("EMPTY", "d", env=env) == "d"  # empty counts as unset
    assert env_int("I", 0, env=env) == 42
    assert env_int("MISSING", 7, env=env) == 7
    assert env_float("F", 1.0, env=env) == 0.25
    assert env_bool("B", False, env=env) is True
    assert env_bool("MISSING", True, env=env) is True
    assert env_port("MISSING", 0, env=env) == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: env_str("REQ", required=True, env={}), "REQ is required but not set"),
        (lambda: env_int("I", 0, minimum=1, env={"I": "0"}), "I must be >= 1, got 0"),
        (lambda: env_float("F", 0.0, env={"F": "fast"}), "F must be a number, got 'fast'"),
        (lambda: env_float("F", 0.0, env={"F": "nan"}), "F must be a number, got NaN"),
        (lambda: env_bool("B", False, env={"B": "maybe"}), "B must be a boolean"),
        (lambda: env_port("P", 0, env={"P": "-1"}), "P must be >= 0"),
    ],
)
def test_helpers_fail_with_clear_messages(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


@dataclass(frozen=True)
class _IngestConfig(EnvConfig):
    grpc_port: int = env_field("FRAUD_TEST_GRPC_PORT", 50051)
    dedupe_window_s: float = env_field("FRAUD_TEST_DEDUPE_WINDOW_S", 120.0)
    strict: bool = env_field("FRAUD_TEST_STRICT", False)
    model_dir: Path = env_field("FRAUD_TEST_MODEL_DIR", Path("var/models"))
    label: str = "not-from-env"


def test_env_config_subclass_reads_typed_fields() -> None:
    assert _IngestConfig.from_env(env={}) == _IngestConfig()

    config = _IngestConfig.from_env(
        env={"FRAUD_TEST_GRPC_PORT": "6000", "FRAUD_TEST_STRICT": "1", "FRAUD_TEST_MODEL_DIR": "/m"},
        label="override",
    )
    assert config == _IngestConfig(grpc_port=6000, strict=True, model_dir=Path("/m"), label="override")

    with pytest.raises(ConfigError, match="FRAUD_TEST_DEDUPE_WINDOW_S must be a number"):
        _IngestConfig.from_env(env={"FRAUD_TEST_DEDUPE_WINDOW_S": "soon"})


def test_service_env_name() -> None:
    assert service_env_name("scoring") == "SCORING"
    assert service_env_name("model-governance.v2") == "MODEL_GOVERNANCE_V2"
    with pytest.raises(ConfigError, match="service name"):
        CommonConfig.from_env("--", env={})
