"""Tracing (OpenTelemetry, OTLP gRPC), W3C trace context across NATS headers, Prometheus metrics, logging.

Every service calls `setup_telemetry`, `start_metrics_server` and `get_logger` from here instead of
carrying its own copies.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

import prometheus_client
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_propagator = TraceContextTextMapPropagator()
_global_provider_set = False


def setup_telemetry(service_name: str, otlp_endpoint: str = "", *, set_global: bool = True) -> TracerProvider:
    """Creates the tracer provider for this process.

    Args:
        service_name: Value of the ``service.name`` resource attribute.
        otlp_endpoint: OTLP gRPC endpoint (``http://127.0.0.1:4317`` or ``host:port``); empty = no export.
            Plain-text for ``http://`` and loopback hosts, TLS otherwise.
        set_global: Install it as the global provider (only the first call in a process can).

    Returns:
        The provider; call ``shutdown()`` on it at exit to flush pending spans.
    """
    global _global_provider_set
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if otlp_endpoint:
        # Imported lazily: the exporter pulls in grpc channel setup that services without tracing don't need.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=_is_plaintext(otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global and not _global_provider_set:
        trace.set_tracer_provider(provider)
        _global_provider_set = True
    return provider


def _is_plaintext(endpoint: str) -> bool:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    return parts.scheme == "http" or (parts.scheme != "https" and (parts.hostname or "") in _LOOPBACK_HOSTS)


def inject_headers(headers: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Adds the current span's W3C ``traceparent`` (and ``tracestate``) to message headers.

    Args:
        headers: Headers to extend (e.g. a NATS message's); a new dict when None.

    Returns:
        The headers as a dict (the same object when a dict was given).
    """
    carrier: dict[str, str] = headers if isinstance(headers, dict) else dict(headers or {})
    _propagator.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """Returns a context whose parent span is the one named by ``traceparent`` in ``headers`` (if any).

    Use it as ``tracer.start_as_current_span(name, context=extract_context(msg.headers))``.
    """
    return _propagator.extract(dict(headers or {}))


def start_metrics_server(
    port: int = 0, *, registry: prometheus_client.CollectorRegistry | None = None, host: str = "127.0.0.1"
) -> int:
    """Serves Prometheus text metrics on ``host:port`` from a daemon thread.

    Args:
        port: TCP port; 0 lets the OS choose a free one.
        registry: Registry to expose; the process-wide default when None.
        host: Address to bind; loopback unless a deployment (a container) says otherwise.

    Returns:
        The bound port.
    """
    server, _thread = prometheus_client.start_http_server(
        port, addr=host, registry=registry or prometheus_client.REGISTRY
    )
    return int(server.server_port)


_STANDARD_RECORD_KEYS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class KeyValueFormatter(logging.Formatter):
    """One line per record: ``ts=... level=... logger=... msg=... [trace_id=...] [extra keys...]``."""

    def format(self, record: logging.LogRecord) -> str:
        fields: list[tuple[str, object]] = [
            ("ts", self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}"),
            ("level", record.levelname),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            fields.append(("trace_id", format(span_context.trace_id, "032x")))
        fields += [(k, v) for k, v in vars(record).items() if k not in _STANDARD_RECORD_KEYS and not k.startswith("_")]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_quote(value)}" for key, value in fields)


_configured = False


def configure_logging(level: str | int = "INFO") -> None:
    """Sends root logging to stderr in key=value lines; later calls only change the level."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root.addHandler(handler)
    _configured = True


def get_logger(name: str) -> logging.Logger:
    """Returns a stdlib logger, configuring key=value logging on first use (level INFO unless configured)."""
    if not _configured:
        configure_logging()
    return logging.getLogger(name)
