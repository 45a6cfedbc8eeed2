#!/bin/bash
# Node heap flags side by side (docs/performance.md, "Memory"): three `portico run`
# processes with different NODE_OPTIONS serve the same configuration against one
# nginx backend on loopback; wrk -t1 -c64 rounds are taken in turn so the machine's
# drift hits every variant alike. Prints req/s per round and each process's peak RSS.
#   bench/heap-flags.sh ["FLAGS A" "FLAGS B" "FLAGS C"]     (run from the repository root)
set -euo pipefail
VARIANTS=("${1:---max-semi-space-size=32 --max-old-space-size=4096}" "${2:---max-semi-space-size=32 --max-old-space-size=1024}" "${3:---max-semi-space-size=16 --max-old-space-size=1024}")
DIR=$(mktemp -d /tmp/portico-heap-flags-XXXXXX)
chmod 755 "$DIR"   # nginx's workers run as another user
NODE=node_modules/.bin/node
# The bodies: 1 KiB and ~72 KiB of JSON.
$NODE -e '
const fs = require("fs");
const items = Array.from({ length: 600 }, (_, i) => ({ id: i, sku: "sku-" + i, name: "item name " + i, qty: i % 9 + 1, price: (i * 7.31) % 100, tags: ["alpha", "bravo", "charlie"] }));
fs.writeFileSync(process.argv[1] + "/big.json", JSON.stringify({ id: 1, name: "big", internal: { x: 1 }, items }));
fs.writeFileSync(process.argv[1] + "/small.json", JSON.stringify({ id: 1, name: "x".repeat(1000) }));' "$DIR"
cat > "$DIR/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $DIR/nginx.pid; error_log $DIR/nginx.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18180;
  location /big { default_type application/json; alias $DIR/big.json; }
  location /small { default_type application/json; alias $DIR/small.json; } } }
CONF
nginx -c "$DIR/nginx.conf" -p "$DIR" & NGINX=$!
PIDS=()
cleanup() { kill "${PIDS[@]}" "$NGINX" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18180/big && break; sleep 0.1; done
curl -sf -o /dev/null http://127.0.0.1:18180/big || { echo "the nginx backend does not answer /big"; exit 1; }
for i in 0 1 2; do
  port=$((18181 + i))
  cat > "$DIR/portico-$i.json" <<CONF
{"version": 3, "port": $port, "endpoints": [
 {"endpoint": "/big", "backend": [{"host": ["http://127.0.0.1:18180"], "url_pattern": "/big", "allow": ["id", "name", "items"]}]},
 {"endpoint": "/agg", "backend": [{"host": ["http://127.0.0.1:18180"], "url_pattern": "/small", "group": "a"},
   {"host": ["http://127.0.0.1:18180"], "url_pattern": "/small", "group": "b"}, {"host": ["http://127.0.0.1:18180"], "url_pattern": "/small", "group": "c"}]}]}
CONF
  NODE_OPTIONS="${VARIANTS[$i]}" $NODE bin/portico.js run -c "$DIR/portico-$i.json" --workers 1 >/dev/null 2>&1 &
  PIDS+=($!)
done
sleep 3
for i in 0 1 2; do curl -s -o /dev/null -w "check :$((18181 + i))/big %{http_code} %{size_download} bytes\n" "http://127.0.0.1:$((18181 + i))/big"; done
for path in /big /agg; do
  for i in 0 1 2; do wrk -t1 -c64 -d2 "http://127.0.0.1:$((18181 + i))$path" >/dev/null; done
  for round in 1 2 3; do
    for i in 0 1 2; do
      echo "$path round $round [${VARIANTS[$i]}]: $(wrk -t1 -c64 -d5 "http://127.0.0.1:$((18181 + i))$path" | awk '/Requests\/sec/ {print int($2)}') req/s"
    done
  done
done
for i in 0 1 2; do echo "[${VARIANTS[$i]}] peak RSS $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/${PIDS[$i]}/status") MB"; done
