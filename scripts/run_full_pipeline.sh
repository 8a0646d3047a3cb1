#!/usr/bin/env bash
# Run the whole data pipeline once: extract + land every source, transfer to the knowledge-store inbox,
# then chunk, embed and index each target collection (`jisik pipeline run`).
#
#   sh scripts/run_full_pipeline.sh                          # $JISIK_PIPELINE_CONFIG, else the example
#   sh scripts/run_full_pipeline.sh CONFIG.yaml [--source NAME ...] [--no-index] [--json]
#
# With no config the example in examples/pipeline/ runs (its warehouse is created first).
# Exit code: 0 ok, 1 a stage failed (see `jisik pipeline runs CONFIG`), 2 a config error.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # `sh script` on a dash system
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
jisik_venv "dev"
source scripts/_pipeline_config.sh
exec jisik pipeline run "$@"
