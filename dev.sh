#!/usr/bin/env bash
# One entry point for a fresh host (as root):
#   ./dev.sh demo    install what is missing, run scenarios/quick.toml, write reports/<run-id>/report.{html,pdf}
#   ./dev.sh tests   the whole test suite, end-to-end guests included
#   ./dev.sh lint | typecheck | SESSION...   any nox session (see noxfile.py)
set -euo pipefail
cd "$(dirname "$0")"

[[ $# -ge 1 ]] || { sed -n '2,5p' "$0"; exit 2; }

bash scripts/setup-host.sh

# nox lives in its own small venv; each session builds its own venv under .nox/
if [[ ! -x .venv/bin/nox ]]; then
  echo "dev.sh: creating .venv with nox"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'nox>=2024.3'
fi
exec .venv/bin/nox --reuse-existing-virtualenvs -s "$@"
