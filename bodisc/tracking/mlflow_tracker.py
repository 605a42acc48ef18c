"""MLflow logging for campaigns, kept apart from the campaign's own state.

The tracking store lives in ``mlruns/`` (configurable): an SQLite backend
``mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts/`` (MLflow 3 refuses its old
plain-file backend by default). Open the UI with::

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db

One MLflow run per campaign; its id is kept in the campaign store, so a resumed campaign
continues the same run. Nothing in the campaign depends on MLflow: every call here is
guarded, a failure is reported once through ``warn`` and the caller keeps what was not
logged (``iterations.logged`` in the store) to send it on the next start.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def tracking_uri(mlruns: Path) -> str:
    """The MLflow tracking URI for an ``mlruns`` folder."""
    return f"sqlite:///{Path(mlruns).resolve() / 'mlflow.db'}"


def ui_command(mlruns: Path) -> str:
    """The shell command that opens the MLflow UI on ``mlruns``."""
    return f"mlflow ui --backend-store-uri {tracking_uri(mlruns)}"


class Tracker:
    """A guarded MLflow client for one campaign run.

    Args:
        mlruns: Folder of the tracking store (``sqlite`` file and artifacts).
        experiment: Experiment name (the campaign name).
        warn: Called once with a one-line message when tracking stops working.
        uri: Tracking URI overriding ``mlruns`` (e.g. ``http://127.0.0.1:5000``).
    """

    def __init__(self, mlruns: Path, experiment: str, warn: Callable[[str], None],
                 uri: str | None = None) -> None:
        self.mlruns = Path(mlruns).resolve()
        self.uri = uri or tracking_uri(self.mlruns)
        self.experiment = experiment
        self.run_id: str | None = None
        self._warn = warn
        self._warned = False
        self._client: Any = None

    @property
    def ok(self) -> bool:
        """True while tracking works."""
        return self._client is not None and self.run_id is not None

    def _fail(self, what: str, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            self._warn(f"MLflow tracking unavailable ({what}: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); the campaign goes "
                       f"on and logs the missing records when tracking works again")

    def start(self, run_id: str | None, run_name: str, params: Mapping[str, Any],
              tags: Mapping[str, str]) -> str | None:
        """Continue run ``run_id`` or create a new one; returns the run id or ``None``."""
        # A tracking server that is down must cost seconds, not MLflow's default minutes
        # of retries with back-off; the user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        try:
            from mlflow.entities import Param, RunStatus
            from mlflow.tracking import MlflowClient

            for name in ("mlflow", "alembic"):  # after import: mlflow sets its own levels
                logging.getLogger(name).setLevel(logging.WARNING)

            if self.uri.startswith("sqlite:"):
                self.mlruns.mkdir(parents=True, exist_ok=True)
            client = MlflowClient(tracking_uri=self.uri)
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                artifacts = (self.mlruns / "artifacts" / self.experiment).as_uri()
                exp_id = client.create_experiment(
                    self.experiment,
                    artifact_location=artifacts if self.uri.startswith("sqlite:") else None,
                )
            else:
                exp_id = exp.experiment_id
            if run_id is not None:
                client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            else:
                run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
                run_id = run.info.run_id
                items = [Param(k, _param_text(v)) for k, v in sorted(params.items())]
                for i in range(0, len(items), 100):
                    client.log_batch(run_id, params=items[i : i + 100])
            self._client, self.run_id = client, run_id
            return run_id
        except Exception as exc:  # noqa: BLE001 - tracking must never stop a campaign
            self._fail("start", exc)
            return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> bool:
        """Log metrics at ``step``; returns whether they went out."""
        return self.log_metrics_at([(step, metrics)])

    def log_metrics_at(self, records: list[tuple[int, Mapping[str, float]]]) -> bool:
        """Log metrics at several steps in few requests: ``[(step, {key: value}), ...]``."""
        if not self.ok:
            return False
        try:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [Metric(k, float(v), now, int(step)) for step, metrics in records
                     for k, v in sorted(metrics.items()) if v is not None and v == v]
            for i in range(0, len(batch), 500):
                self._client.log_batch(self.run_id, metrics=batch[i : i + 500])
            return True
        except Exception as exc:  # noqa: BLE001
            self._fail("log_metrics", exc)
            self._client = None
            return False

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> bool:
        """Upload one file as an artifact of the run (under ``artifact_path``, if given)."""
        if not self.ok:
            return False
        try:
            self._client.log_artifact(self.run_id, str(path), artifact_path)
            return True
        except Exception as exc:  # noqa: BLE001
            self._fail("log_artifact", exc)
            return False

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set tags on the run (best effort)."""
        if not self.ok:
            return
        try:
            for k, v in tags.items():
                self._client.set_tag(self.run_id, k, v)
        except Exception as exc:  # noqa: BLE001
            self._fail("set_tag", exc)

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run finished (``FINISHED``, ``KILLED`` or ``FAILED``)."""
        if not self.ok:
            return
        try:
            self._client.set_terminated(self.run_id, status=status)
        except Exception as exc:  # noqa: BLE001
            self._fail("end", exc)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, for logging a config as params."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def log_bench_run(mlruns: Path, experiment: str, run_name: str, params: Mapping[str, Any],
                  metrics: Mapping[str, float], artifacts: list[Path],
                  warn: Callable[[str], None]) -> str | None:
    """Log one benchmark run (params, metrics, files) to MLflow; returns its run id."""
    tracker = Tracker(mlruns, experiment, warn)
    run_id = tracker.start(None, run_name=run_name, params=params,
                           tags={"bodisc.bench": experiment})
    if run_id is None:
        return None
    tracker.log_metrics(metrics, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.end("FINISHED")
    return run_id
