#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs what the tests need (system packages, the
# default model, the vocab-only GGUFs llama.cpp ships for tokenizer tests), then runs every
# test target in a release build (the numeric tests are far too slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-model.sh
scripts/fetch-gemma3.sh  # Gemma 3 270M for the gemma3 reference tests
if [ -x scripts/fetch-test-vocabs.sh ]; then scripts/fetch-test-vocabs.sh; fi
# The independent validator of the constrained-decoding tests (scripts/validate_json_outputs.py):
# jsonschema, with rfc3339-validator so the date-time and time formats are checked.
if ! python3 -c "import jsonschema, rfc3339_validator" 2>/dev/null; then
  python3 -m pip install --quiet jsonschema==4.26.0 rfc3339-validator==0.1.4 ||
    python3 -m pip install --quiet --break-system-packages jsonschema==4.26.0 rfc3339-validator==0.1.4
fi
# The OpenAI Python SDK drives the end-to-end API suite (Tests/DaemonTests/OpenAISDKTests.swift).
python3 -c "import openai" 2>/dev/null || python3 -m pip install --quiet "openai==3.63.0"
swift build -c release --build-tests
# One test at a time: synchronous numeric tests run on Swift's cooperative pool, which has one
# thread per core; on a 2-core machine two of them would starve the NIO server and daemon
# tests running beside them into timeouts that say nothing about the code.
swift test -c release --skip-build --no-parallel "$@"
