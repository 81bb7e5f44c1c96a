#!/usr/bin/env bash
# Sample firmware and signed sample releases for tests, the demo and benchmarks. Generates the images
# (make_images.py: 4 MiB and 16 MiB, each with a v2 that changes about 1%, an insertion included) and signs them
# with the SAMPLE release key committed next to this script.
#
# The sample key is public on purpose: anyone can sign with it. Never put SAMPLE-release-key-NOT-SECRET.pub on a
# real device; make your own key with `equicast keygen --release -o release.key`.
#
# Usage: firmware-samples/make-samples.sh [OUTDIR]   (default firmware-samples/out; needs python3 and a built
# `equicast`, found on PATH or in .build/debug or .build/release)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
equicast=$(command -v equicast || true)
for candidate in "$here/../.build/debug/equicast" "$here/../.build/release/equicast"; do
  [ -n "$equicast" ] || { [ -x "$candidate" ] && equicast=$candidate; }
done
[ -n "$equicast" ] || { echo "make-samples: build equicast first (swift build)" >&2; exit 1; }
python3 "$here/make_images.py" -o "$out"
# Key files must be private to be used (0600); git does not keep that mode, so sign from a private copy.
key=$(mktemp)
trap 'rm -f "$key"' EXIT
cp "$here/SAMPLE-release-key-NOT-SECRET" "$key"
chmod 600 "$key"
for size in 4m 16m; do
  for version in 1 2; do
    "$equicast" release build "$out/sample-$size-v$version.img" --version "$version" --product equicast-sample \
      --key "$key" -o "$out/sample-$size-v$version.eqr"
  done
done
