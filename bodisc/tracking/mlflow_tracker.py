"""MLflow logging for campaigns, kept apart from the campaign's own state.

The tracking store lives in ``mlruns/`` (configurable): an SQLite backend
``mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts/`` (MLflow 3 refuses its old
plain-file backend by default). Open the UI with::

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db

One MLflow run per campaign; its id is kept in the campaign store, so a resumed campaign
continues the same run. The experiment is tagged as model training (MLflow 3 otherwise
opens it in its GenAI view) and carries a shared view of the runs table with the
campaign's figures as columns; :func:`run_link` and :func:`experiment_link` are the
addresses the CLI prints. Nothing in the campaign depends on MLflow: every call here is
guarded, a failure is reported once through ``warn`` and the caller keeps what was not
logged (``iterations.logged`` in the store) to send it on the next start.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: Address of ``mlflow ui`` when it is started as :func:`ui_command` says; the
#: ``BODISC_MLFLOW_UI`` environment variable names another (e.g. a forwarded port).
DEFAULT_UI = "http://127.0.0.1:5000"

#: The experiment tag by which MLflow 3's UI shows an experiment as model training
#: (runs, charts) rather than GenAI (traces); and the query parameter that its newer
#: sidebar reads instead (``workflowType``).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
WORKFLOW_QUERY = "workflowType=machine_learning"

#: Name of the shared view of the runs table that the printed experiment link opens
#: (stored as the experiment tag ``mlflow.sharedViewState.<name>``).
SHARED_VIEW = "bodisc"

#: Metric name prefixes: one meaning of "step" per prefix (MLflow groups charts by it).
CALL, ITERATION, FINAL = "call/", "iteration/", "final/"


def tracking_uri(mlruns: Path) -> str:
    """The MLflow tracking URI for an ``mlruns`` folder."""
    return f"sqlite:///{Path(mlruns).resolve() / 'mlflow.db'}"


def ui_command(mlruns: Path) -> str:
    """The shell command that opens the MLflow UI on ``mlruns`` (at :data:`DEFAULT_UI`)."""
    return f"mlflow ui --backend-store-uri {tracking_uri(mlruns)} --port 5000"


def ui_address(uri: str | None, given: str | None = None) -> str | None:
    """The web address of the MLflow UI that shows the runs of tracking URI ``uri``.

    Args:
        uri: The tracking URI.
        given: An address the user gave; wins when set.

    Returns:
        ``given``; else the URI itself for an ``http(s)://`` tracking server (it serves
        the UI; without user name and password, which must not end up in a link); else
        ``BODISC_MLFLOW_UI``; else :data:`DEFAULT_UI` for a local ``sqlite:`` or
        ``file:`` store (where ``mlflow ui`` serves when started as :func:`ui_command`
        says); else ``None`` (e.g. ``databricks``, a database server).
    """
    from urllib.parse import urlsplit, urlunsplit

    if given:
        return given.rstrip("/")
    text = str(uri or "")
    if text.lower().startswith(("http://", "https://")):
        parts = urlsplit(text)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
    if os.environ.get("BODISC_MLFLOW_UI"):
        return os.environ["BODISC_MLFLOW_UI"].rstrip("/")
    if text.lower().startswith(("sqlite:", "file:")):
        return DEFAULT_UI
    return None


def run_link(uri: str | None, experiment_id: str | None, run_id: str | None,
             tab: str = "model-metrics", given: str | None = None) -> str | None:
    """The UI address of a run's page ``tab`` in the model-training view.

    ``tab`` is ``model-metrics`` (the charts), ``artifacts/<path>`` (a file shown) or
    ``""`` (the overview). ``None`` without an experiment id, a run id or an address.
    """
    address = ui_address(uri, given)
    if not run_id or not experiment_id or address is None:
        return None
    page = f"{address}/#/experiments/{quote(str(experiment_id), safe='')}/runs/" \
           f"{quote(str(run_id), safe='')}"
    return f"{page}/{tab}?{WORKFLOW_QUERY}" if tab else f"{page}?{WORKFLOW_QUERY}"


def experiment_link(uri: str, experiment_id: str, parent_run_id: str | None = None
                    ) -> str | None:
    """The UI address of an experiment's runs table, in bodisc's shared view.

    With ``parent_run_id`` the table is filtered to that comparison's runs.
    """
    address = ui_address(uri)
    if address is None:
        return None
    query = f"{WORKFLOW_QUERY}&viewStateShareKey={SHARED_VIEW}"
    if parent_run_id:
        query += "&searchFilter=" + quote(f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return f"{address}/#/experiments/{experiment_id}/runs?{query}"


def shared_view(columns: Sequence[str], order_by: str | None = None,
                ascending: bool = False) -> str:
    """The runs-table view state (JSON) that shows ``columns`` (canonical column keys).

    MLflow's UI names a column ``metrics.`key``` (``params``, ``tags``, ``attributes``);
    it reads this state from the experiment tag ``mlflow.sharedViewState.<name>``.
    """
    state: dict[str, Any] = {"selectedColumns": list(columns)}
    if order_by:
        state.update(orderByKey=order_by, orderByAsc=ascending)
    return json.dumps(state)


def column(kind: str, key: str) -> str:
    """MLflow's canonical runs-table column key, e.g. ``metrics.`final/best```."""
    return f"{kind}.`{key}`"


@functools.cache
def provenance_tags() -> dict[str, str]:
    """The bodisc version and, in a git checkout, its commit (MLflow's source tag)."""
    from bodisc import __version__

    tags = {"bodisc.version": __version__}
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                 capture_output=True, text=True, timeout=5, check=True)
            commit = out.stdout.strip()
            if len(commit) == 40:
                tags["mlflow.source.git.commit"] = commit
                tags["bodisc.git_commit"] = commit
        except (OSError, subprocess.SubprocessError):
            pass
    return tags


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
        self.experiment_id: str | None = None
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
              tags: Mapping[str, str], view: str | None = None) -> str | None:
        """Continue run ``run_id`` or create a new one; returns the run id or ``None``.

        Args:
            run_id: The run to continue (``None``: create one).
            run_name: Name of a new run.
            params: Params of a new run (a continued run keeps its own).
            tags: Tags of a new run; on a continued run they are set again (a
                description or a resolved setting may have changed).
            view: The experiment's shared runs-table view (:func:`shared_view`).
        """
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
            existing = {} if exp is None else exp.tags
            wanted = {EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]}
            if view is not None:
                wanted[f"mlflow.sharedViewState.{SHARED_VIEW}"] = view
            for key, value in wanted.items():
                if existing.get(key) != value:
                    client.set_experiment_tag(exp_id, key, value)
            all_tags = {**provenance_tags(), **tags}
            if run_id is not None:
                client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                from mlflow.entities import RunTag

                client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
            else:
                run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
                run_id = run.info.run_id
                items = [Param(k, _param_text(v)) for k, v in sorted(params.items())]
                for i in range(0, len(items), 100):
                    client.log_batch(run_id, params=items[i : i + 100])
            self._client, self.run_id, self.experiment_id = client, run_id, exp_id
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

    def log_image(self, path: Path, key: str, step: int) -> bool:
        """Log a PNG as a time-stepped image ``key`` (an image chart in the run's charts)."""
        if not self.ok:
            return False
        try:
            from PIL import Image

            with Image.open(path) as image:
                self._client.log_image(self.run_id, image.convert("RGB"), key=key,
                                       step=int(step))
            return True
        except Exception as exc:  # noqa: BLE001
            self._fail("log_image", exc)
            return False

    def link(self, tab: str = "model-metrics") -> str | None:
        """The UI address of this run's page ``tab`` (see :func:`run_link`), once started."""
        return run_link(self.uri, self.experiment_id, self.run_id, tab)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set tags on the run (best effort)."""
        if not self.ok:
            return
        try:
            from mlflow.entities import RunTag

            self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
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
