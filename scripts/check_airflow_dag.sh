#!/usr/bin/env bash
# CI check: import the Airflow DAG module (src/jisik/pipeline/airflow_dag.py) with a real apache-airflow,
# in its OWN virtual environment, and check the DAGs it builds (task ids, dependencies, schedule).
#
#   bash scripts/check_airflow_dag.sh
#
# apache-airflow pins hundreds of packages, so it lives in .venv-airflow (git-ignored) and its pins never
# constrain jisik's environment. jisik goes in there without its dependencies (`pip install --no-deps -e`),
# plus the few the DAG module's import chain needs (pydantic-settings, PyYAML; pydantic comes with Airflow).
# The first run creates the venv (a few minutes); later runs reuse it and take seconds. A stamp file records
# what was installed: change the version or move the checkout and the venv is refreshed.
#
# Environment: JISIK_AIRFLOW_VENV (default .venv-airflow), JISIK_AIRFLOW_VERSION (default 3.3.2),
#              JISIK_AIRFLOW_PYTHON (the interpreter that creates the venv, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
venv="${JISIK_AIRFLOW_VENV:-$root/.venv-airflow}"
version="${JISIK_AIRFLOW_VERSION:-3.3.2}"
python="${JISIK_AIRFLOW_PYTHON:-python3}"
stamp="$venv/.jisik-airflow"
want="apache-airflow==$version jisik=$root"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  start=$(date +%s)
  echo "check_airflow_dag: preparing $venv ($want)" >&2
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "${pip[@]}" --upgrade pip
  "${pip[@]}" "apache-airflow==$version" "pydantic-settings>=2.3" "pyyaml>=6"
  "${pip[@]}" --no-deps -e "$root"
  echo "$want" > "$stamp"
  echo "check_airflow_dag: venv ready in $(( $(date +%s) - start )) s" >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export AIRFLOW_HOME="$work/airflow" JISIK_HOME="$work/jisik" AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$work/dags" CHECK_WORK="$work"
mkdir -p "$work/dags" "$work/docs"
exec "$venv/bin/python" - <<'PY'
"""Build the DAGs from a sample config, directly and through Airflow's own DagBag."""
import os
import sys
from pathlib import Path

work = Path(os.environ["CHECK_WORK"])
(work / "docs" / "a.md").write_text("# 안내\n\n예금자보호 한도는 1억 원입니다.\n", encoding="utf-8")
config = work / "pipeline.yaml"
config.write_text(f"""
sources:
  - kind: sql
    name: benefits
    url: sqlite:///{work}/warehouse.sqlite3
    query: SELECT id, title FROM benefits
  - kind: file
    name: guides
    paths: ["{work}/docs"]
targets:
  - collection: benefits
    sources: [benefits]
    chunker: rows
  - collection: guides
    sources: [guides]
schedules:
  - sources: [benefits]
    cron: "0 6 * * 1-5"
    timezone: Asia/Seoul
  - sources: [benefits, guides]
    cron: "30 2 * * *"
""", encoding="utf-8")

import airflow  # noqa: E402

import jisik.pipeline.airflow_dag as mod  # noqa: E402

assert str(Path(mod.__file__).resolve()).startswith(str(Path.cwd())), mod.__file__
assert not hasattr(mod, "dag"), "no module-level DAG without JISIK_PIPELINE_CONFIG"

dag = mod.build_dag(config, dag_id="jisik_check")
assert dag.dag_id == "jisik_check"
assert set(dag.task_ids) == {"extract_benefits", "extract_guides", "transfer", "index"}, dag.task_ids
assert dag.get_task("transfer").upstream_task_ids == {"extract_benefits", "extract_guides"}
assert dag.get_task("index").upstream_task_ids == {"transfer"}
assert dag.get_task("index").downstream_task_ids == set()
assert dag.get_task("extract_benefits").op_kwargs == {"config_path": str(config), "source": "benefits"}

dags = mod.build_dags(config, prefix="jisik_check")
assert [d.dag_id for d in dags] == ["jisik_check_0_benefits", "jisik_check_1_benefits_guides"], [d.dag_id for d in dags]
assert set(dags[0].task_ids) == {"extract_benefits", "transfer", "index"}
for d, cron in zip(dags, ("0 6 * * 1-5", "30 2 * * *"), strict=True):
    assert d.timetable.summary == cron, d.timetable.summary
    assert str(d.timetable._timezone) in ("Asia/Seoul", "Timezone('Asia/Seoul')"), d.timetable._timezone
    assert d.max_active_runs == 1 and not d.catchup

# the module-level DAGs exist only when JISIK_PIPELINE_CONFIG is set
import importlib  # noqa: E402

os.environ["JISIK_PIPELINE_CONFIG"] = str(config)
mod = importlib.reload(mod)
assert "jisik_pipeline_0_benefits" in vars(mod) and "jisik_pipeline_1_benefits_guides" in vars(mod)

# a dags-folder file as a user would write it, parsed by Airflow's DagBag (import errors = failure)
(work / "dags" / "jisik_dags.py").write_text(
    "# airflow DAG file\nfrom jisik.pipeline.airflow_dag import dags_from_env\n"
    "globals().update(dags_from_env())\n", encoding="utf-8")
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
try:
    bag = DagBag(dag_folder=str(work / "dags"), include_examples=False)
except TypeError:  # Airflow 3.1+: examples are never loaded from a given folder
    bag = DagBag(dag_folder=str(work / "dags"))
assert not bag.import_errors, bag.import_errors
assert sorted(bag.dag_ids) == ["jisik_pipeline_0_benefits", "jisik_pipeline_1_benefits_guides"], bag.dag_ids
print(f"airflow {airflow.__version__} (python {sys.version.split()[0]}): jisik DAG module OK — "
      f"{len(bag.dag_ids)} DAG(s) from JISIK_PIPELINE_CONFIG, tasks {sorted(dag.task_ids)}")
PY
