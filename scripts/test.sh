#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs what the tests need (system packages, the
# default model, the vocab-only GGUFs llama.cpp ships for tokenizer tests), then runs every
# test target in a release build (the numeric tests are far too slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-model.sh
if [ -x scripts/fetch-test-vocabs.sh ]; then scripts/fetch-test-vocabs.sh; fi
swift build -c release --build-tests
swift test -c release --skip-build "$@"
