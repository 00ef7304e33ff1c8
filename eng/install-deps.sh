#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian 12 machine with the .NET 10 SDK.
# Idempotent and quiet when everything is already there.
set -euo pipefail
# gcc and binutils build the sample VMM's test guest (samples/guest/build.sh); iproute2 gives the VMM
# and the tests the ip tool for taps in network namespaces.
need=()
for pair in python3:python3 gcc:gcc ld:binutils ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "missing: ${need[*]} (run as root to install)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }
