#!/bin/bash
# Profiles the back ends of the device-only comparison with perf: our daemon and qemu-storage-daemon
# (aio=io_uring) on the same image, one load each from samples/Virtio.Bench, perf record -g on the
# back end while the load runs, then the top entries by command, shared object and symbol.
#   bash eng/profile-blk.sh [--qd N] [--rw randread|randwrite] [--mode interrupt|poll] [--seconds S] [--ours-keys K=V,...] [--out DIR]
# Needs: perf (linux-perf), qemu-storage-daemon, the built daemon and generator (dotnet build -c Release
# samples/Virtio.Bench samples/Virtio.VhostUserDaemon). Our JIT frames are named through
# /tmp/perf-PID.map (DOTNET_PerfMapEnabled=1, W^X off so perf sees the code as anonymous memory).
set -euo pipefail
qd=1 rw=randread mode=interrupt seconds=4 keys="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --qd) qd=$2; shift 2;; --rw) rw=$2; shift 2;; --mode) mode=$2; shift 2;;
    --seconds) seconds=$2; shift 2;; --ours-keys) keys=",$2"; shift 2;; --out) out=$2; shift 2;;
    -h|--help) sed -n 2,8p "$0"; exit 0;;
    *) echo "profile-blk: unknown option $1" >&2; exit 2;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
daemon=$root/samples/Virtio.VhostUserDaemon/bin/Release/net10.0/Virtio.VhostUserDaemon.dll
bench=$root/samples/Virtio.Bench/bin/Release/net10.0/Virtio.Bench.dll
for need in perf qemu-storage-daemon dotnet; do command -v $need >/dev/null || { echo "profile-blk: $need is not installed" >&2; exit 2; }; done
for f in "$daemon" "$bench"; do [ -f "$f" ] || { echo "profile-blk: $f is missing; run: dotnet build -c Release samples/Virtio.Bench samples/Virtio.VhostUserDaemon" >&2; exit 2; }; done
work=$(mktemp -d /tmp/profile-blk.XXXXXX); out=${out:-$work}; mkdir -p "$out"
image=/dev/shm/profile-blk-$$.img
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -f "$image"; }
trap cleanup EXIT
top() { perf report -i "$1" --no-children -g none -q --sort "$2" 2>/dev/null | grep -v '^$' | head -n "$3" || true; }
dd if=/dev/urandom of="$image" bs=1M count=256 status=none   # every block backed: no holes
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 dotnet "$daemon" --socket "$work/ours.sock" --blk "$image,queues=1$keys" >"$work/ours.log" 2>&1 & pids+=($!); ours=$!
qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$image,aio=io_uring,locking=off" \
  --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$work/qsd.sock,writable=on" >"$work/qsd.log" 2>&1 & pids+=($!); qsd=$!
for s in ours qsd; do for _ in $(seq 100); do [ -S "$work/$s.sock" ] && break; sleep 0.1; done; done
for target in ours:$ours qsd:$qsd; do
  name=${target%%:*} pid=${target##*:}
  dotnet "$bench" blk --socket "$work/$name.sock" --qd "$qd" --rw "$rw" --mode "$mode" --seconds $((seconds + 2)) >"$out/$name-load.txt" 2>&1 & load=$!
  sleep 1
  perf record -q -F 1999 -g -p "$pid" -o "$out/$name.perf" -- sleep "$seconds" 2>/dev/null
  wait $load
  echo "== $name (pid $pid): qd $qd $rw $mode; $(grep -m1 IOPS "$out/$name-load.txt" | xargs)"
  top "$out/$name.perf" comm 4; top "$out/$name.perf" dso 5; top "$out/$name.perf" sym 12
done
echo "profile-blk: perf data in $out"
