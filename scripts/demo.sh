#!/usr/bin/env bash
# Set-up command 1: install jisik and run the demo platform on embedded defaults.
# Builds the demo knowledge base from bundled public data and answers questions (interactive).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
jisik_venv "dev"
exec jisik demo "$@"
