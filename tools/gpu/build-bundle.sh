#!/usr/bin/env bash
# Builds the self-contained linux-x64 GPU runner bundle: artifacts/nbp-gpu.tar.xz (no .NET needed on
# the GPU machine, InvariantGlobalization so ICU is not needed either). On the GPU machine, from a
# checkout (the fixtures come from its tests/fixtures): bash tools/gpu/device-session.sh OUT, or by hand
#   tar -xJf nbp-gpu.tar.xz && ln -s $PWD/tests/fixtures nbp-gpu/fixtures && nbp-gpu/nbp-gpu-check --out results
#   nbp-gpu/nbp-bench --random-weights --backend cuda --device-weights f16 --cache /tmp --out results
# which runs the kernel parity suite on CUDA, whole-model parity against the PyTorch fixtures, and
# the K600-shaped timings against the weight-bandwidth floor (tools/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=artifacts/nbp-gpu
rm -rf "$out" artifacts/nbp-gpu.tar.xz
# three apps, one folder (they share the self-contained runtime): the check, the end-to-end benchmark
# (nbp-bench --random-weights --backend cuda --device-weights f16) and the per-op BenchmarkDotNet suite
# (NbpEngine.Benchmarks --filter "*DeviceBenchmarks*": the CUDA kernels against cuBLAS)
for project in tools/gpu/NbpEngine.GpuRunner bench/NbpEngine.Bench bench/NbpEngine.Benchmarks; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained \
    -p:InvariantGlobalization=true -p:DebugType=none -o "$out" -v q -nologo
done
# Dead weight on a Linux GPU machine, cut so that bundle + working tree stay under the device tool's 64 MiB:
# BenchmarkDotNet's Windows tracing natives, its disassembler (capstone, Iced, ClrMD, the debugger natives),
# the XML docs, and framework assemblies nothing here loads (checked: all three apps start and run on the CPU).
# The PyTorch fixtures (30 MB) are left out too: they travel in the working tree, and the runner is pointed at
# them with a link (tools/gpu/device-session.sh does it).
rm -rf "$out"/amd64 "$out"/x86 "$out"/arm64 "$out"/*.xml "$out"/fixtures
rm -f "$out"/{libcapstone.so,Gee.External.Capstone.dll,Iced.dll,Dia2Lib.dll,TraceReloggerLib.dll,createdump} \
      "$out"/{libmscordaccore.so,libmscordbi.so,Microsoft.Diagnostics.Tracing.TraceEvent.dll,Microsoft.Diagnostics.Runtime.dll} \
      "$out"/{System.Private.Xml.dll,System.Private.Xml.Linq.dll,System.Data.Common.dll,Microsoft.VisualBasic.Core.dll}
tar -C artifacts -cf - nbp-gpu | xz -9 -T0 > artifacts/nbp-gpu.tar.xz
size=$(stat -c %s artifacts/nbp-gpu.tar.xz)
echo "artifacts/nbp-gpu.tar.xz: $((size / 1024 / 1024)) MiB"
# the device tool carries at most 64 MiB in all, and the working tree is ~33 MB of it
if [ "$size" -ge $((30 * 1024 * 1024)) ]; then echo "bundle is over 30 MiB" >&2; exit 1; fi
