"""MonitorService over gRPC."""

from __future__ import annotations

import grpc

from fraud.monitor.v1 import monitor_service_pb2 as monitor
from fraud.monitor.v1 import monitor_service_pb2_grpc as monitor_grpc
from services.monitor.domain.counters import PredictionCounters


class MonitorServicer(monitor_grpc.MonitorServiceServicer):
    def __init__(self, counters: PredictionCounters) -> None:
        self._counters = counters

    async def GetMonitorStatus(
        self, request: monitor.GetMonitorStatusRequest, context: grpc.aio.ServicerContext
    ) -> monitor.GetMonitorStatusResponse:
        c = self._counters
        response = monitor.GetMonitorStatusResponse(
            predictions_seen=c.predictions,
            decisions=dict(c.decisions),
            degraded=c.degraded,
            labels_seen=c.labels,
            last_prediction_sequence=c.last_prediction_seq,
        )
        response.latest_event_time.FromMicroseconds(c.latest_event_time_us)
        return response
