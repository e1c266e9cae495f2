#!/usr/bin/env bash
# Everything a fresh Debian machine with the Swift toolchain needs: system packages, the
# default model, and release builds of droplorad (the daemon) and droplora (client and tools).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-model.sh
swift build -c release --product droplorad
swift build -c release --product droplora
echo "built: .build/release/droplorad .build/release/droplora"
