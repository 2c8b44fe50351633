#!/usr/bin/env bash
# Fuzzes one reader with AFL++ and SharpFuzz: bash tools/fuzz/run.sh TARGET SECONDS
# TARGET: safetensors | tokens | png | checkpoint. Installs afl++ (Debian) and the sharpfuzz tool,
# publishes the harness, instruments the project's assemblies, seeds from tests/fixtures, runs
# afl-fuzz for SECONDS and prints its summary. Findings: tools/fuzz/out/TARGET/findings (ignored by git);
# keep crash inputs and a minimised queue in tests/fixtures/fuzz/TARGET (FuzzCorpusTests replays them).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?target}; seconds=${2:-600}
command -v afl-fuzz >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q afl++; }
export PATH="$PATH:$HOME/.dotnet/tools"
command -v sharpfuzz >/dev/null || dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0
out=tools/fuzz/out/$target
rm -rf "$out" && mkdir -p "$out"
dotnet publish tools/fuzz/NbpEngine.Fuzz -c Release -o "$out/bin" -v q -nologo
# seeds first: instrumented assemblies only run under afl-fuzz
"$out/bin/NbpEngine.Fuzz" seeds "$out/seeds" tests/fixtures
for dll in NbpEngine.Loader.dll NbpEngine.Tokenizer.dll nbp-run.dll; do sharpfuzz "$out/bin/$dll"; done
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_SKIP_BIN_CHECK=1
afl-fuzz -i "$out/seeds/$target" -o "$out/findings" -t 5000 -m none -V "$seconds" -- "$out/bin/NbpEngine.Fuzz" "$target" > "$out/afl.log" 2>&1 || true
cat "$out/findings/default/fuzzer_stats" 2>/dev/null | grep -E "execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|run_time|bitmap_cvg" || tail -20 "$out/afl.log"
