#!/usr/bin/env bash
# Fetches ptxas, cuobjdump and nvdisasm (CUDA 11.8) from Debian's non-free nvidia-cuda-toolkit package without
# installing it: a private apt source list for the non-free component that reuses the URI and suite of this
# machine's own Debian source list (no host name is written here), apt-get download, dpkg -x into a cache
# folder, the three binaries kept. Nothing on the system changes. Prints the folder holding them.
#   bash tools/sass/fetch-cuda-tools.sh [DEST]      (default: .cache/cuda-tools under the repository)
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:-$PWD/.cache/cuda-tools}
if [ -x "$dest/bin/ptxas" ] && [ -x "$dest/bin/cuobjdump" ] && [ -x "$dest/bin/nvdisasm" ]; then echo "$dest/bin"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/debs"
source_file=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)
if [ -n "$source_file" ]; then
  uri=$(awk '/^URIs:/{print $2; exit}' "$source_file")
  suite=$(awk '/^Suites:/{print $2; exit}' "$source_file")
else
  read -r uri suite < <(awk '$1 == "deb" {print $2, $3; exit}' /etc/apt/sources.list)
fi
[ -n "${uri:-}" ] && [ -n "${suite:-}" ] || { echo "no Debian source list found to reuse" >&2; exit 1; }
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" "$suite" > "$work/parts/non-free.sources"
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -q >/dev/null
(cd "$work/debs" && apt-get "${apt_opts[@]}" download nvidia-cuda-toolkit >/dev/null)
dpkg -x "$work"/debs/nvidia-cuda-toolkit_*.deb "$work/x"
mkdir -p "$dest/bin"
for tool in ptxas cuobjdump nvdisasm; do cp "$work/x/usr/bin/$tool" "$dest/bin/"; done
echo "$dest/bin"
