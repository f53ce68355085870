"""params.yaml section `feedback`: the feedback dataset `feedback export` writes from the prediction log."""
from __future__ import annotations

from dataclasses import dataclass

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.config.serving import ServeConfig


@dataclass(frozen=True)
class FeedbackConfig:
    dataset: str                     # the folder `feedback export` writes (data.extra_sources lists it to train on it)
    test_fraction: float             # share of labelled requests held out as `test` (by a hash of the request id)

    def __post_init__(self) -> None:
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"feedback.test_fraction is a share of requests (0 <= f < 1), got {self.test_fraction}")


@dataclass(frozen=True)
class FeedbackParams:
    """What `feedback` reads: the classes, where the log is (serve.prediction_log) and this section."""

    data: DataConfig
    serve: ServeConfig
    feedback: FeedbackConfig
