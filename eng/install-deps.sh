#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian 12 machine with the .NET 10 SDK.
# Idempotent and quiet when everything is already there.
#
# The vhost-user integration tests (tests/Virtio.VhostUser.IntegrationTests) boot Debian's stock
# kernel in QEMU: qemu-system-x86 (which pulls in qemu-system-common, the package that ships
# qemu-storage-daemon in Debian 12), qemu-utils (qemu-img), iproute2 (namespaces, taps), iperf3
# (the host side of the net test) and cpio. The guest itself is built from .deb files that
# samples/linux-guest/build-guest.sh fetches with apt-get download. Without root nothing is
# installed for them and those tests skip with the reason.
set -euo pipefail
# gcc and binutils build the sample VMM's test guest (samples/guest/build.sh); iproute2 gives the VMM
# and the tests the ip tool for taps in network namespaces.
need=()
for pair in python3:python3 gcc:gcc ld:binutils ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then echo "missing: ${need[*]} (run as root to install)" >&2; exit 1; fi
# tool:package pairs for the QEMU boot tests (optional: they skip without them).
boot=()
for pair in qemu-system-x86_64:qemu-system-x86 qemu-storage-daemon:qemu-system-common qemu-img:qemu-utils \
    iperf3:iperf3 cpio:cpio; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || boot+=("${pair#*:}")
done
if [ ${#boot[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then need+=("${boot[@]}")
  else echo "not root: not installing ${boot[*]} (the QEMU boot tests will skip)" >&2; fi
fi
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  # iperf3 asks whether to start a system-wide server: no (the net test starts its own in a namespace).
  echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  rm -f "$log"
fi
command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }
