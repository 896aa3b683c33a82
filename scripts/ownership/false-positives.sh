#!/usr/bin/env bash
# The false-positive check of docs/results/ownership.md: one LeNet-300-100 ticket claimed (graph
# signature and trigger set), then ~110 tickets searched independently at the same 90 % sparsity
# (one-shot magnitude on other seeds, and random, ERK, SNIP, GraSP and SynFlow masks at
# initialisation) verified against the claim. Prints one line per suspect and a summary.
# Usage: bash scripts/ownership/false-positives.sh [WORK_DIR]   (default /tmp/ticket-lab-fp)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/ticket-lab-fp}
mkdir -p "$work"
export TICKET_LAB_DB="$work/lab.db" TICKET_LAB_KEY="$work/owner-key.pem"
rm -f "$TICKET_LAB_DB" "$TICKET_LAB_KEY"
cli() { node dist/core/cli/ticket-lab.js "$@" 2>/dev/null; }
last_ticket() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tickets.at(-1).id))'; }
common=(--model lenet-300-100 --dataset mnist --sparsity 0.9 --backend wasm)

owned=$(cli search oneshot "${common[@]}" --iterations 2000 --seed 0 --json | last_ticket)
cli claim "$owned" --trigger --iterations 2000 --json > "$work/claim.json"
graph_claim=$(node -e 'const c=require(process.argv[1]);console.log(c.claims.find(x=>x.kind==="graph-signature").id)' "$work/claim.json")
echo "owned $owned, claim $graph_claim"

suspects=()
for seed in $(seq 1 40); do suspects+=("$(cli search oneshot "${common[@]}" --iterations 1000 --no-retrain --seed "$seed" --json | last_ticket)"); done
for method in random erk snip grasp synflow; do
  count=$([ "$method" = random ] || [ "$method" = snip ] && echo 20 || echo 10)
  for seed in $(seq 1 "$count"); do suspects+=("$(cli search "$method" "${common[@]}" --no-train --seed "$seed" --json | last_ticket)"); done
done

: > "$work/verdicts.jsonl"
for suspect in "${suspects[@]}"; do cli verify "$suspect" --claim "$graph_claim" --json >> "$work/verdicts.jsonl"; echo >> "$work/verdicts.jsonl"; done
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split(/\n(?=\{)/).filter((l) => l.trim());
const v = lines.map((l) => JSON.parse(l).verdicts[0]);
const scores = v.map((x) => x.score).sort((a, b) => a - b);
const q = (f) => scores[Math.min(scores.length - 1, Math.floor(f * scores.length))];
console.log(`suspects ${v.length}; verified ${v.filter((x) => x.verdict === "verified").length}; threshold ${v[0].threshold}/256`);
console.log(`matches: min ${scores[0]}, 5% ${q(0.05)}, median ${q(0.5)}, 95% ${q(0.95)}, max ${scores.at(-1)}; smallest p ${Math.min(...v.map((x) => x.pValue)).toExponential(2)}`);
' "$work/verdicts.jsonl"
