#!/usr/bin/env bash
# The retriever batch: chunk, embed and index what the pipeline delivered to the knowledge-store inbox,
# one new index version per target collection (`jisik pipeline index`). Schedule it after transfers, or
# let `jisik pipeline watch` / `consume` run it as objects arrive.
#
#   sh scripts/run_retriever_batch.sh                        # $JISIK_PIPELINE_CONFIG, else the example
#   sh scripts/run_retriever_batch.sh CONFIG.yaml [--json]
#
# Exit code: 0 ok, 1 a collection failed to index, 2 a config error.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # `sh script` on a dash system
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
jisik_venv "dev"
source scripts/_pipeline_config.sh
exec jisik pipeline index "$@"
