#!/usr/bin/env bash
# Packs the 0.1.0 baseline of the five libraries into DIR: the tree of the commit whose public API
# was moved to PublicAPI.Shipped.txt for 0.1.0 (BASELINE_COMMIT below), packed as version 0.1.0.
# `dotnet pack -p:VirtioBaselineDir=DIR` then validates each library package against its baseline
# (Microsoft.DotNet.PackageValidation, PackageValidationBaselinePath in Directory.Build.targets): a
# public member or type removed or changed since 0.1.0 fails the pack with its CP diagnostic.
# Usage: bash eng/package-baseline.sh DIR
set -euo pipefail
BASELINE_VERSION=0.1.0
BASELINE_COMMIT=48622f271d340b7f93b0c132896835becb57b7a1
out=${1:?usage: package-baseline.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
if ! git -C "$repo" cat-file -e "$BASELINE_COMMIT^{commit}" 2>/dev/null; then
  echo "package-baseline: commit $BASELINE_COMMIT (the $BASELINE_VERSION baseline) is not in this clone (a shallow clone? fetch the full history)" >&2
  exit 1
fi
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
git -C "$repo" archive "$BASELINE_COMMIT" | tar -x -C "$tree"
mkdir -p "$out"
for lib in Virtio.Core Virtio.Blk Virtio.Net Virtio.Kvm Virtio.VhostUser; do
  echo "package-baseline: $lib $BASELINE_VERSION from ${BASELINE_COMMIT:0:10}"
  dotnet pack "$tree/src/$lib/$lib.csproj" -c Release -p:ReleaseBuild=true -p:ContinuousIntegrationBuild=true \
    -o "$out" -v quiet -nologo >"$tree/pack-$lib.log" 2>&1 \
    || { cat "$tree/pack-$lib.log" >&2; echo "package-baseline: packing $lib at ${BASELINE_COMMIT:0:10} failed" >&2; exit 1; }
  [ -f "$out/$lib.$BASELINE_VERSION.nupkg" ] || { echo "package-baseline: $out/$lib.$BASELINE_VERSION.nupkg was not made" >&2; exit 1; }
done
