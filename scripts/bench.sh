#!/usr/bin/env bash
# Run the benchmarks in their own virtual environment (.venv-bench), so the comparison
# libraries (LlamaIndex, rank_bm25) never constrain jisik's own pins. Results: bench/results/*.json,
# rendered into docs/benchmarks.md by bench/report.py.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-bench
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[bench,llm-local-small]" 2>&1 | grep -v "^WARNING: Location" || true
export JISIK_HOME="${JISIK_HOME:-$PWD/bench/.cache/home}"
"$VENV/bin/python" bench/embed_speed.py --pages 40 --configs e5-default,onnx-default,onnx-int8,use > bench/results/embed_speed.txt
"$VENV/bin/python" bench/retrieval_quality.py
"$VENV/bin/python" bench/fusion_study.py
"$VENV/bin/python" bench/search_latency.py
"$VENV/bin/python" bench/pipeline_speed.py
"$VENV/bin/python" bench/pipeline_speed.py --rows 2000 --embedder e5-small  # the default embedder
"$VENV/bin/python" bench/api_load.py  # needs the API packages (fastapi, uvicorn) in the bench venv
"$VENV/bin/python" bench/faq_offtopic.py
"$VENV/bin/python" bench/multiquery_llm.py  # the offline 0.5B GGUF model (llm-local-small extra)
"$VENV/bin/python" bench/report.py
