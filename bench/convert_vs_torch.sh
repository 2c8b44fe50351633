#!/usr/bin/env bash
# nbp-run convert vs the Python reference converter on a K600-shaped Lightning checkpoint (issue 10).
# Makes bench/out/k600.ckpt (3.5 GB) on first use; needs ~11 GB of free disk.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/install-reference.sh
dotnet build -c Release src/Cli -v q -nologo
exec /usr/bin/python3 bench/convert_vs_torch.py --exe src/Cli/bin/Release/net10.0/nbp-run "$@"
