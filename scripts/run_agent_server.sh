#!/usr/bin/env bash
# Start the API server (seed 000's scripts/run_agent_server.sh): FastAPI on uvicorn, docs at /docs.
#
#   sh scripts/run_agent_server.sh                          # 127.0.0.1:8000, one worker
#   sh scripts/run_agent_server.sh --host 0.0.0.0 --port 8000 --workers 2
#
# Configuration comes from the environment / .env (JISIK_*), e.g. JISIK_LLM, JISIK_API_KEYS,
# JISIK_ADMIN_API_KEY, JISIK_SESSIONS_URL=redis://..., JISIK_CHATLOG_URL=postgresql+psycopg://...
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # `sh script` on a dash system
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
jisik_venv "dev,redis,postgres,mysql,celery"  # server stores: Redis sessions, SQL chat logs, Celery jobs
exec jisik serve "$@"
