"""The Airflow DAG module imported by a real apache-airflow, in its own virtual environment
(scripts/check_airflow_dag.sh creates .venv-airflow on first use: about a minute, then seconds)."""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_airflow_imports_the_dag_module_and_builds_the_dags() -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_airflow_dag.sh")], cwd=ROOT, capture_output=True,
                          text=True, timeout=1200)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "jisik DAG module OK" in proc.stdout, output[-6000:]
    assert "extract_benefits" in proc.stdout and "2 DAG(s)" in proc.stdout
