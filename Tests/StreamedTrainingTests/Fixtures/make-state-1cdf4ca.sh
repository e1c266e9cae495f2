#!/bin/bash
# Writes a state directory with the release droplorad (main at 1cdf4ca): one created adapter with
# pruning rate 0.3, samples pushed, trained until version >= 1 is published, default set.
set -e
cd /tmp/catfix
./droplorad --socket /tmp/catfix/d.sock --state-directory /tmp/catfix/state --adapters-directory /tmp/catfix/adapters \
  --model /work/wt-catalog/models/SmolLM2-135M-Instruct.Q4_1.gguf --set training.batch_size=4 --set training.publish_every=2 \
  --set training.max_sequence_length=64 --set training.held_out_every=4 > daemon.log 2>&1 &
pid=$!
for i in $(seq 1 100); do [ -S d.sock ] && break; sleep 1; done
curl -s --unix-socket d.sock http://l/v1/adapters -H 'Content-Type: application/json' -d '{"name":"task","rank":2,"pruning_rate":0.3,"targets":["q","v"]}'; echo
python3 - > samples.jsonl <<'PY'
import json
for i in range(12):
    print(json.dumps({"id": f"s{i}", "messages": [{"role":"user","content":f"code for zorblat {i}?"},{"role":"assistant","content":f"QX-{i*7%100}"}]}))
PY
curl -s --unix-socket d.sock http://l/v1/adapters/task/samples --data-binary @samples.jsonl; echo
curl -s --unix-socket d.sock -X POST http://l/v1/adapters/task/default; echo
for i in $(seq 1 300); do
  v=$(curl -s --unix-socket d.sock http://l/v1/adapters/task/training | python3 -c 'import json,sys; print(json.load(sys.stdin)["serving_version"])')
  [ "$v" -ge 1 ] && break; sleep 2
done
curl -s --unix-socket d.sock http://l/v1/adapters/task/training; echo
kill -TERM $pid; wait $pid || true
