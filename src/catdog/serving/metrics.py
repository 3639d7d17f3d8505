"""The service's Prometheus metrics, on a registry of its own (one per app, so tests can build
many apps in one process). Names are stable: dashboards and alerts are built on them.

With several workers, `catdog serve` sets PROMETHEUS_MULTIPROC_DIR and every worker's /metrics
answers for all of them (prometheus_client's multiprocess mode); gauges say how to combine.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# Input statistics in [0, 1] (brightness, contrast, colourfulness) and width / height.
RATIO_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ASPECT_BUCKETS = (0.5, 0.67, 0.75, 0.9, 1.0, 1.1, 1.25, 1.34, 1.5, 1.78, 2.0, 3.0)


class ServiceMetrics:
    """Request, batching, prediction and model metrics of one service instance."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "catdog_requests", "HTTP requests answered.", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "catdog_request_latency_seconds",
            "Time from request to response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "catdog_batch_size", "Images per model run.", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "catdog_inference_seconds",
            "Time of one model run (a whole batch).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "catdog_queue_depth",
            "Uploads waiting for a runner.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "catdog_images_in_flight",
            "Images admitted and not yet answered.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "catdog_predictions", "Images classified, by label.", ["label"], registry=r
        )
        self.confidence = Histogram(
            "catdog_prediction_confidence",
            "Confidence of each answer (the top probability).",
            ["label"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "catdog_refusals", "Images or requests refused, by reason.", ["reason"], registry=r
        )
        self.model_info = Gauge(
            "catdog_model_info",
            "The model being served (value 1).",
            ["name", "version"],
            registry=r,
        )
        self.reloads = Counter(
            "catdog_model_reloads", "Model reloads, by outcome.", ["outcome"], registry=r
        )
        self.ready = Gauge(
            "catdog_ready",
            "1 when a warmed model is serving (in every worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.runner_restarts = Counter(
            "catdog_runner_restarts",
            "Runner processes started again, by cause (exited, hung).",
            ["cause"],
            registry=r,
        )
        self.runners_up = Gauge(
            "catdog_runners_up",
            "Runner processes alive.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.body_bytes_in_flight = Gauge(
            "catdog_body_bytes_in_flight",
            "Upload bytes reserved by requests whose body is being read or held.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._model: tuple[str, str] | None = None
        self._add_monitoring_metrics()

    def _add_monitoring_metrics(self) -> None:
        """The monitoring loop's families (catdog.monitoring): the prediction log, feedback,
        live accuracy and the inputs' statistics. Labels stay bounded: outcome, class label and
        model version (a handful of versions per deployment)."""
        r = self.registry
        self.log_queue_depth = Gauge(
            "catdog_prediction_log_queue_depth",
            "Prediction-log rows waiting for the writer.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_written = Counter(
            "catdog_prediction_log_written", "Prediction-log rows stored.", registry=r
        )
        self.log_dropped = Counter(
            "catdog_prediction_log_dropped",
            "Prediction-log rows not stored (the answer was still sent), by reason: "
            "queue_full or store_down.",
            ["reason"],
            registry=r,
        )
        self.store_up = Gauge(
            "catdog_prediction_store_up",
            "1 while the prediction store takes writes.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.feedback = Counter(
            "catdog_feedback",
            "Predictions given their true label (a repeated answer for one id is not counted), "
            "by whether the model was right.",
            ["model_version", "outcome"],
            registry=r,
        )
        self.live_accuracy = Gauge(
            "catdog_live_accuracy_ratio",
            "Accuracy over the last CATDOG_ACCURACY_WINDOW labelled predictions of a version.",
            ["model_version"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.live_labelled = Gauge(
            "catdog_live_accuracy_labelled",
            "Labelled predictions behind catdog_live_accuracy_ratio.",
            ["model_version"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.not_a_pet = Counter(
            "catdog_not_a_pet_predictions",
            "Answers whose photo the model judged to show no pet (is_pet false).",
            registry=r,
        )
        # Keyed by catdog.monitoring.stats.STATISTICS; drift alerts compare these histograms'
        # means with the baseline gauges below.
        self.input_stats = {
            statistic: Histogram(
                f"catdog_input_{name}",
                f"{description} of each logged photo.",
                buckets=buckets,
                registry=r,
            )
            for statistic, name, description, buckets in (
                ("brightness", "brightness_ratio", "Mean luma / 255", RATIO_BUCKETS),
                ("contrast", "contrast_ratio", "Luma standard deviation / 255", RATIO_BUCKETS),
                (
                    "colourfulness",
                    "colourfulness_ratio",
                    "Hasler-Süsstrunk colourfulness / 255",
                    RATIO_BUCKETS,
                ),
                ("aspect_ratio", "aspect_ratio", "Width / height", ASPECT_BUCKETS),
            )
        }
        self.baseline_mean = Gauge(
            "catdog_input_baseline_mean",
            "Mean of an input statistic on the training photos (the drift baseline beside the "
            "served model).",
            ["statistic"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.baseline_stddev = Gauge(
            "catdog_input_baseline_stddev",
            "Standard deviation of an input statistic on the training photos.",
            ["statistic"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def set_model(self, name: str, version: str) -> None:
        """Point catdog_model_info at the model now served (one series with value 1)."""
        if self._model is not None and self._model != (name, version):
            # Multiprocess files keep a removed series: zero it first.
            self.model_info.labels(*self._model).set(0)
            self.model_info.remove(*self._model)
        self._model = (name, version)
        self.model_info.labels(name=name, version=version).set(1)
        self.ready.set(1)

    def exposition(self) -> bytes:
        """Prometheus text: this app's series, or every worker's in multiprocess mode."""
        if os.environ.get(MULTIPROCESS_DIR_ENV):
            combined = CollectorRegistry()
            MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(combined))
        return bytes(generate_latest(self.registry))
