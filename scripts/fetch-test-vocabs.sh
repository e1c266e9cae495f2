#!/usr/bin/env bash
# Fetches the vocab-only GGUF files the Tokenization tests compare against (llama.cpp's
# ggml-vocab-*.gguf, with their .inp/.out test texts, and a few real chat templates) into
# models/vocab/. They ship inside
# the llama-cpp-python source distribution on PyPI, so we download that sdist once and
# extract just those files. Idempotent: does nothing when every file is already present.
set -euo pipefail

VERSION="0.3.36"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/models/vocab"
NAMES=(llama-spm llama-bpe qwen2 phi-3 gpt-2)
# Real chat templates llama.cpp keeps for its tests (used by the golden-fixture script).
TEMPLATES=(meta-llama-Llama-3.1-8B-Instruct.jinja google-gemma-2-2b-it.jinja microsoft-Phi-3.5-mini-instruct.jinja Qwen-Qwen3-0.6B.jinja)

missing=()
for n in "${NAMES[@]}"; do
  for ext in gguf gguf.inp gguf.out; do
    [[ -s "${DEST}/ggml-vocab-${n}.${ext}" ]] || missing+=("ggml-vocab-${n}.${ext}")
  done
done
for t in "${TEMPLATES[@]}"; do
  [[ -s "${DEST}/templates/${t}" ]] || missing+=("templates/${t}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "fetch-test-vocabs: all vocab files present in ${DEST}"
  exit 0
fi

mkdir -p "${DEST}/templates"
TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT

echo "fetch-test-vocabs: downloading llama-cpp-python==${VERSION} source distribution"
# --no-binary for this package only: ":all:" would also force its build dependencies
# (cmake, ninja) to be compiled from source just to read the sdist metadata.
python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==${VERSION}" -d "${TMP}"
SDIST=""
for f in "${TMP}"/*.tar.gz; do [[ -f "${f}" ]] && SDIST="${f}"; done
[[ -n "${SDIST}" ]] || { echo "fetch-test-vocabs: sdist not found after download" >&2; exit 1; }

patterns=()
for f in "${missing[@]}"; do patterns+=("--wildcards" "*/vendor/llama.cpp/models/${f}"); done
tar -xzf "${SDIST}" -C "${TMP}" "${patterns[@]}"
for f in "${missing[@]}"; do
  src="$(find "${TMP}" -path "*/vendor/llama.cpp/models/${f}" -print -quit)"
  [[ -n "${src}" ]] || { echo "fetch-test-vocabs: ${f} not in the sdist" >&2; exit 1; }
  cp "${src}" "${DEST}/${f}.part" && mv "${DEST}/${f}.part" "${DEST}/${f}"
done
echo "fetch-test-vocabs: wrote ${#missing[@]} files to ${DEST}"
