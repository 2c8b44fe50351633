#!/usr/bin/env bash
# nbp-run batch throughput (issue 16): videos per hour for --batch 1, 2, 4, 8 on one machine, K600 shapes
# (24 layers, C = 1536, V = 64000; 512-token prompt, 768 generated tokens, top-k 16000 / top-p 0.9), one run
# after the other in this script. --batch N steps N jobs together in one batch session (one weight read per step
# for all N; all threads on every step). Needs bench/out/k600.safetensors (bash bench/convert_vs_torch.sh makes the
# checkpoint; this script converts it), ~7 GB for the model and its packed copy, and ~0.5 GB of KV cache per slot.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-8}
dotnet build -c Release src/Cli -v q -nologo >/dev/null
exe=src/Cli/bin/Release/net10.0/nbp-run
out=bench/out/batch
mkdir -p "$out"
[ -f bench/out/k600.safetensors ] || "$exe" convert bench/out/k600.ckpt bench/out/k600.safetensors
python3 -c "import random; r = random.Random(1); print(' '.join(str(r.randrange(64000)) for _ in range(512)))" > "$out/prompt.txt"
python3 -c "
for i in range($jobs): print('{\"id\": \"video-%02d\", \"prompt_tokens\": \"prompt.txt\", \"seed\": %d}' % (i, i))" > "$out/jobs.jsonl"
echo "| --batch | threads | videos | seconds | videos/hour |"
echo "|---|---|---|---|---|"
for n in ${BATCHES:-1 2 4 8}; do
  rm -rf "$out/n$n"
  threads=$(nproc)
  start=$(date +%s.%N)
  "$exe" batch --weights bench/out/k600.safetensors --manifest "$out/jobs.jsonl" --out "$out/n$n" --batch "$n" --threads "$threads" --backend cpu --quiet 2>"$out/n$n.log"
  end=$(date +%s.%N)
  python3 -c "s = $end - $start; print(f'| $n | $threads | $jobs | {s:.1f} | {$jobs * 3600 / s:.0f} |')"
  if [ "$n" != 1 ]; then diff -r -x '*.log' "$out/n1" "$out/n$n" >/dev/null && true || echo "tokens differ between --batch 1 and --batch $n"; fi
done
