"""Airflow DAGs for a jisik pipeline: ``extract_<source>`` (one task per source, in parallel) -> ``transfer``
-> ``index``, each task calling the same job functions as the CLI, the scheduler and Celery
(:mod:`jisik.pipeline.jobs`).

Only this module imports Airflow; jisik itself never does. In the DAGs folder of an Airflow deployment
where jisik is installed (``pip install jisik``; the workers need ``JISIK_HOME`` and whatever the
pipeline's stores need), put a file such as::

    # dags/jisik_pipeline.py  (Airflow DAG file)
    from jisik.pipeline.airflow_dag import build_dags
    for dag in build_dags("/etc/jisik/pipeline.yaml"):
        globals()[dag.dag_id] = dag

``build_dags`` makes one DAG per ``schedules`` entry of the YAML (its sources, its cron in its time
zone); :func:`build_dag` makes one DAG for any sources and schedule. With ``JISIK_PIPELINE_CONFIG`` set,
importing this module defines those DAGs at module level (``jisik_pipeline_…``), so the module itself can
also be the DAG file.

A task fails when its stage failed (the run report under the worker's ``JISIK_HOME`` says why) and is
retried by Airflow; a failed extract holds back transfer and index for that DAG run (``all_success``),
and the next run catches up, since every stage is idempotent. ``max_active_runs=1``: runs never overlap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

try:
    try:  # Airflow 3: the task SDK
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG
    try:
        from airflow.providers.standard.operators.python import PythonOperator
    except ImportError:
        from airflow.operators.python import PythonOperator
    from airflow.timetables.trigger import CronTriggerTimetable
except ImportError as exc:  # pragma: no cover - exercised in the separate Airflow venv
    raise ImportError("jisik.pipeline.airflow_dag는 apache-airflow가 설치된 환경에서만 씁니다. "
                      "(jisik.pipeline.airflow_dag needs apache-airflow; install it in the Airflow environment.)"
                      ) from exc

from jisik.pipeline.config import load_pipeline_config

ENV_VAR = "JISIK_PIPELINE_CONFIG"
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "jisik", "retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30), "execution_timeout": timedelta(hours=3),
}


# -- task callables (run on the Airflow worker; jisik's pipeline code is imported only there) ---------
def extract_task(config_path: str, source: str) -> dict[str, Any]:
    from jisik.pipeline.jobs import extract_job, log_stage, raise_for_failure

    return raise_for_failure(extract_job(config_path, source, on_stage=log_stage)).to_dict()


def transfer_task(config_path: str) -> dict[str, Any]:
    from jisik.pipeline.jobs import log_stage, raise_for_failure, transfer_job

    return raise_for_failure(transfer_job(config_path, on_stage=log_stage)).to_dict()


def index_task(config_path: str) -> dict[str, Any]:
    from jisik.pipeline.jobs import index_job, log_stage, raise_for_failure

    return raise_for_failure(index_job(config_path, on_stage=log_stage)).to_dict()


# -- DAG factories --------------------------------------------------------------------------------------
def build_dag(config_path: str | Path, *, dag_id: str = "jisik_pipeline", schedule: str | None = None,
              timezone: str = "Asia/Seoul", sources: Sequence[str] | None = None,
              start_date: datetime | None = None, default_args: dict[str, Any] | None = None,
              tags: Sequence[str] = ("jisik",)) -> Any:
    """A DAG ``extract_<source>`` (each of ``sources``, default all) >> ``transfer`` >> ``index``.

    ``schedule`` is a five-field cron line in ``timezone`` (None: triggered manually or by an API call).
    The YAML is validated here, at DAG parse time, so a broken config shows as an import error.
    """
    path = str(config_path)
    config = load_pipeline_config(Path(path))
    names = list(sources) if sources is not None else [s.name for s in config.sources]
    for name in names:
        config.source(name)
    timetable = CronTriggerTimetable(schedule, timezone=timezone) if schedule else None
    with DAG(
        dag_id=dag_id, schedule=timetable, start_date=start_date or datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False, max_active_runs=1, default_args={**DEFAULT_ARGS, **(default_args or {})},
        tags=list(tags), description=f"jisik pipeline {Path(path).name}: {', '.join(names)}",
    ) as dag:
        extracts = [PythonOperator(task_id=f"extract_{name}", python_callable=extract_task,
                                   op_kwargs={"config_path": path, "source": name}) for name in names]
        transfer = PythonOperator(task_id="transfer", python_callable=transfer_task, op_kwargs={"config_path": path})
        index = PythonOperator(task_id="index", python_callable=index_task, op_kwargs={"config_path": path})
        extracts >> transfer >> index
    return dag


def build_dags(config_path: str | Path, *, prefix: str = "jisik_pipeline", **options: Any) -> list[Any]:
    """One DAG per ``schedules`` entry (``{prefix}_{i}_{sources}``); a config without schedules gives one
    unscheduled DAG named ``prefix`` over every source."""
    config = load_pipeline_config(Path(config_path))
    if not config.schedules:
        return [build_dag(config_path, dag_id=prefix, **options)]
    return [build_dag(config_path, dag_id=f"{prefix}_{i}_{'_'.join(entry.sources)}"[:250], schedule=entry.cron,
                      timezone=entry.timezone, sources=entry.sources, **options)
            for i, entry in enumerate(config.schedules)]


def dags_from_env(env_var: str = ENV_VAR, *, prefix: str = "jisik_pipeline") -> dict[str, Any]:
    """``{dag_id: dag}`` for the pipeline YAML named by ``$JISIK_PIPELINE_CONFIG`` (empty when unset)."""
    path = os.environ.get(env_var)
    return {dag.dag_id: dag for dag in build_dags(path, prefix=prefix)} if path else {}


globals().update(dags_from_env())
