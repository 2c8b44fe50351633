#!/usr/bin/env bash
# Side-by-side CPU benchmark of nbp-run and the PyTorch reference (issue 2). Takes ~15-25 min on 2 cores.
# Installs Debian's torch + numpy and OpenBLAS (the default reference BLAS is ~20x slower and would
# make the comparison meaningless), builds nbp-run in Release, runs bench/cpu_vs_torch.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/install-reference.sh
dotnet build -c Release src/Cli -v q -nologo
exec /usr/bin/python3 bench/cpu_vs_torch.py --exe src/Cli/bin/Release/net10.0/nbp-run "$@"
