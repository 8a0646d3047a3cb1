"""jisik never imports Airflow: only jisik.pipeline.airflow_dag does (it runs in the Airflow environment,
tested by tests/integration/test_airflow_dag.py)."""

import subprocess
import sys

CHECK = """
import importlib.util, sys
import jisik.cli, jisik.cli_pipeline, jisik.pipeline.jobs, jisik.pipeline.service, jisik.pipeline.scheduler
import jisik.pipeline.tasks, jisik.pipeline.runner
assert not [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")], "airflow was imported"
if importlib.util.find_spec("airflow") is None:
    try:
        import jisik.pipeline.airflow_dag
    except ImportError as e:
        assert "needs apache-airflow" in str(e), e
    else:
        raise AssertionError("airflow_dag imported without airflow")
print("ok")
"""


def test_importing_jisik_does_not_import_airflow() -> None:
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
