"""Shared fixtures: test PKI, real nats-server, real tritonserver, PostgreSQL URL (see tests/fixtures/)."""

pytest_plugins = ["tests.fixtures.identity", "tests.fixtures.nats", "tests.fixtures.triton", "tests.fixtures.platform"]
