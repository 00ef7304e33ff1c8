#!/usr/bin/env bash
# Boots the validation guest (build-guest.sh) in QEMU (TCG) with a virtio-net device and runs the
# guest's "net" test: address eth0, ping the peer, iperf3 TCP both ways.
#
#   run-net.sh [options] [-- extra qemu-system-x86_64 arguments]
#
# Everything runs inside a network namespace this script creates (and deletes): the peer address
# (default 10.99.0.1/24) and an iperf3 server live there, so no packet leaves the machine.
#
#   --backend tap|vhost-user
#        tap (default): QEMU's own in-process virtio-net over a tap in the namespace. This is the
#             reference that proves the guest side; it is not vhost-user.
#        vhost-user: -netdev vhost-user on --socket. A back end must listen there; it is started
#             by --backend-cmd (run inside the namespace) or already running.
#   --socket PATH        vhost-user socket (default WORKDIR/vhost-net.sock)
#   --backend-cmd CMD    started in the namespace before QEMU, "{sock}" replaced by the socket
#                        path, "{tap}" by the tap name the back end should create or open;
#                        killed at exit. Example, our daemon:
#                        --backend-cmd "dotnet Virtio.VhostUserDaemon.dll --socket {sock} --net tap={tap}"
#   --tap NAME           tap interface name (default vtap0)
#   --guest-ip A/N       guest address (default 10.99.0.2/24)
#   --peer-ip A/N        peer address in the namespace (default 10.99.0.1/24)
#   --iperf-time SEC     per direction (default 5)
#   --guest DIR --smp N --mem SIZE --timeout SEC --append "..." --workdir DIR --log FILE
#                        as in run-blk.sh
#
# The exit status is 0 only if the guest printed "VTEST-DONE status=pass".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$HERE/out
BACKEND=tap SOCK= BACKEND_CMD= TAP=vtap0 GUEST_IP=10.99.0.2/24 PEER_IP=10.99.0.1/24 IPERF_TIME=5
SMP=2 MEM=512M TIMEOUT=300 APPEND= WORK= LOG=
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --backend) BACKEND=$2; shift 2 ;;
        --socket) SOCK=$2; shift 2 ;;
        --backend-cmd) BACKEND_CMD=$2; shift 2 ;;
        --tap) TAP=$2; shift 2 ;;
        --guest-ip) GUEST_IP=$2; shift 2 ;;
        --peer-ip) PEER_IP=$2; shift 2 ;;
        --iperf-time) IPERF_TIME=$2; shift 2 ;;
        --guest) GUEST=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --append) APPEND=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --log) LOG=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-net.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

for f in vmlinuz initrd.cpio.gz; do
    [ -f "$GUEST/$f" ] || { echo "run-net.sh: $GUEST/$f missing: run build-guest.sh $GUEST" >&2; exit 2; }
done
[ -n "$WORK" ] || WORK=$(mktemp -d /tmp/vtest-net.XXXXXX)
mkdir -p "$WORK"
: "${SOCK:=$WORK/vhost-net.sock}" "${LOG:=$WORK/console.log}"

# iperf3 for the peer: the host's if installed, else the one build-guest.sh staged, run through
# the staged loader so no host package is needed.
if command -v iperf3 >/dev/null; then
    IPERF=(iperf3)
else
    ST=$GUEST/stage
    IPERF=("$ST/lib64/ld-linux-x86-64.so.2" --library-path
        "$ST/lib/x86_64-linux-gnu:$ST/usr/lib/x86_64-linux-gnu" "$ST/usr/bin/iperf3")
fi

NS=vtest-net-$$
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
nsx() { ip netns exec "$NS" "$@"; }

# The peer: address on the tap once it exists; an iperf3 server on all of the namespace's addresses.
configure_peer() {
    for _ in $(seq 300); do nsx ip link show "$TAP" >/dev/null 2>&1 && break; sleep 0.1; done
    nsx ip addr add "$PEER_IP" dev "$TAP"
    nsx ip link set "$TAP" up
    echo "run-net.sh: peer $PEER_IP on $TAP in netns $NS" >&2
}
# Background processes are started with "ip netns exec" itself, not through the nsx function: a
# backgrounded function runs in a subshell, so $! would be that subshell, and killing it at exit
# left the iperf3 server and the back end running.
ip netns exec "$NS" "${IPERF[@]}" -s > "$WORK/iperf3-server.log" 2>&1 &
PIDS+=($!)

case $BACKEND in
    tap)
        NETDEV=(-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no")
        ;;
    vhost-user)
        if [ -n "$BACKEND_CMD" ]; then
            cmd=${BACKEND_CMD//\{sock\}/$SOCK}; cmd=${cmd//\{tap\}/$TAP}
            echo "run-net.sh: back end: $cmd" | tee "$WORK/backend.cmd" >&2
            ip netns exec "$NS" bash -c "exec $cmd" > "$WORK/backend.log" 2>&1 &
            PIDS+=($!)
            for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
        fi
        [ -S "$SOCK" ] || { echo "run-net.sh: no vhost-user socket at $SOCK" >&2; exit 2; }
        NETDEV=(-chardev "socket,id=c1,path=$SOCK" -netdev "vhost-user,id=n0,chardev=c1")
        ;;
    *) echo "run-net.sh: --backend tap|vhost-user" >&2; exit 2 ;;
esac

TSC_KHZ=$(awk -F': ' '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
KAPPEND="console=ttyS0 quiet tsc_early_khz=$TSC_KHZ tsc=reliable vtest=net vt_ip=$GUEST_IP vt_peer=${PEER_IP%/*} vt_iperf_time=$IPERF_TIME $APPEND"
QEMU_CMD=(qemu-system-x86_64
    -M microvm,accel=tcg,acpi=on,memory-backend=mem
    -object "memory-backend-memfd,id=mem,size=$MEM,share=on"
    -m "$MEM" -smp "$SMP" -nographic -no-reboot
    -global virtio-mmio.force-legacy=false
    -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.cpio.gz"
    -append "$KAPPEND"
    "${NETDEV[@]}"
    -device "virtio-net-device,netdev=n0,mac=52:54:00:99:00:02"
    "${EXTRA[@]}")
printf '%q ' "${QEMU_CMD[@]}" > "$WORK/qemu.cmd"; echo >> "$WORK/qemu.cmd"
echo "run-net.sh: qemu (in netns $NS): $(cat "$WORK/qemu.cmd")" >&2
echo "run-net.sh: host loadavg $(cat /proc/loadavg), nproc $(nproc)" | tee "$WORK/host.txt" >&2

# QEMU's tap netdev, or the vhost-user back end, creates the tap; give it the peer address then.
configure_peer & PIDS+=($!)

t0=${EPOCHREALTIME/./}
set +e
nsx timeout -k 5 "$TIMEOUT" "${QEMU_CMD[@]}" < /dev/null 2>&1 | while IFS= read -r line; do
    t=${EPOCHREALTIME/./}; us=$((t - t0)); line=${line%$'\r'}
    printf '[host %4d.%03d] %s\n' $((us / 1000000)) $((us / 1000 % 1000)) "$line"
done > "$LOG"
rc=${PIPESTATUS[0]}
set -e

grep -E 'VTEST-(INIT|NET|RESULT|DONE|NOTE|WARN)' "$LOG" | sed 's/^\[host *\([0-9.]*\)\] /host=\1 /' || true
if [ "$rc" = 124 ]; then echo "run-net.sh: TIMEOUT after ${TIMEOUT}s (log $LOG)" >&2; fi
echo "run-net.sh: log $LOG, qemu exit $rc" >&2
grep -q 'VTEST-DONE status=pass' "$LOG"
