"""What `GET /metrics` exposes, in Prometheus text format: requests, latency, errors by kind, batch sizes, the
prediction log's failures, model swaps."""
from __future__ import annotations

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)

disable_created_metrics()        # the *_created timestamps are noise on a dashboard

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LOG_WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class ServiceMetrics:
    """One registry per service, so two services in one process (tests) count separately."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("a3lign_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("a3lign_request_latency_seconds", "time from request to response, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("a3lign_errors", "refused or failed requests by kind",
                              ["kind"], registry=self.registry)
        self.batches = Histogram("a3lign_batch_clips", "clips per backend call (micro-batching)",
                                 buckets=BATCH_BUCKETS, registry=self.registry)
        self.log_failures = Counter("a3lign_prediction_log_failures", "prediction log rows not committed before the "
                                    "answer (timeout: late) or not at all (locked, disk_full, unwritable, error), "
                                    "and kept crops lost (crops), by reason", ["reason"], registry=self.registry)
        self.log_wait = Histogram("a3lign_prediction_log_wait_seconds", "how long a request waited for its row's "
                                  "commit in the prediction log (what the log adds to its latency)",
                                  buckets=LOG_WAIT_BUCKETS, registry=self.registry)
        self.swaps = Counter("a3lign_model_swaps", "model reloads by result: swapped, unchanged, refused (fetch or "
                             "verification failed), warmup_failed", ["result"], registry=self.registry)
        self.models_loaded = Gauge("a3lign_models_loaded", "models in memory: the one answering, and one swapped out "
                                   "until its last request is done", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
