#!/usr/bin/env bash
# Set-up command 1: install jisik and run the demo platform on embedded defaults.
# Builds the demo knowledge base from bundled public data and serves it: web UI at http://127.0.0.1:8000/ui/,
# admin dashboard at /ui/admin/, API docs at /docs (Ctrl+C stops). `--ask "질문"` answers and exits;
# `--cli` asks in the terminal instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
jisik_venv "dev"
exec jisik demo "$@"
