#!/usr/bin/env bash
# Boots the validation guest (build-guest.sh) in QEMU (TCG) with a vhost-user-blk device and runs
# one test of its /init against the vhost-user back end on a Unix socket.
#
#   run-blk.sh [options] [-- extra qemu-system-x86_64 arguments]
#
#   --guest DIR         vmlinuz + initrd.cpio.gz (default: samples/linux-guest/out)
#   --backend qsd|external|cmd
#                       qsd (default): start qemu-storage-daemon on --socket over --image.
#                       external: a back end (our daemon) already listens on --socket.
#                       cmd: start --backend-cmd, wait for it to listen on --socket, kill it
#                       at exit.
#   --backend-cmd CMD   for --backend cmd; "{sock}", "{image}" and "{queues}" are replaced,
#                       e.g. our daemon:
#                       --backend-cmd "dotnet Virtio.VhostUserDaemon.dll --socket {sock} --blk {image},queues={queues}"
#   --socket PATH       vhost-user socket (default: WORKDIR/vhost-blk.sock)
#   --image PATH        raw image for qsd (default: WORKDIR/disk.img, created sparse)
#   --image-size SIZE   size of a created image (default 256M)
#   --test NAME         vtest= of the guest: blk-all fio-verify fio-perf flush discard
#                       write-zeroes none shell (default blk-all)
#   --queues N          num-queues of the export and the device (default 2)
#   --smp N             guest vCPUs (default 2)
#   --mem SIZE          guest memory (default 512M)
#   --timeout SEC       bound of the whole boot (default 900)
#   --fio "K=V ..."     guest knobs vt_size vt_runtime vt_numjobs vt_bs vt_qd vt_engine
#                       vt_backlog vt_fio_extra, e.g. --fio 'vt_size=16M vt_qd="1 8 32"'
#                       (kernel command line: values with spaces need double quotes)
#   --append "..."      more kernel parameters
#   --workdir DIR       socket, image and logs (default: a new directory under /tmp)
#   --log FILE          console log (default: WORKDIR/console.log)
#
# The exit status is 0 only if the guest printed "VTEST-DONE status=pass".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$HERE/out
BACKEND=qsd
BACKEND_CMD= SOCK= IMG= IMG_SIZE=256M TEST=blk-all QUEUES=2 SMP=2 MEM=512M TIMEOUT=900 FIO= APPEND= WORK= LOG=
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --guest) GUEST=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        --socket) SOCK=$2; shift 2 ;;
        --backend-cmd) BACKEND_CMD=$2; shift 2 ;;
        --image) IMG=$2; shift 2 ;;
        --image-size) IMG_SIZE=$2; shift 2 ;;
        --test) TEST=$2; shift 2 ;;
        --queues) QUEUES=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --fio) FIO=$2; shift 2 ;;
        --append) APPEND=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --log) LOG=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-blk.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

for f in vmlinuz initrd.cpio.gz; do
    [ -f "$GUEST/$f" ] || { echo "run-blk.sh: $GUEST/$f missing: run build-guest.sh $GUEST" >&2; exit 2; }
done
[ -n "$WORK" ] || WORK=$(mktemp -d /tmp/vtest-blk.XXXXXX)
mkdir -p "$WORK"
: "${SOCK:=$WORK/vhost-blk.sock}" "${LOG:=$WORK/console.log}"

QSD_PID=
cleanup() {
    if [ -n "$QSD_PID" ] && kill -0 "$QSD_PID" 2>/dev/null; then
        kill "$QSD_PID" 2>/dev/null || true
        wait "$QSD_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if [ "$BACKEND" != external ] && [ -z "$IMG" ]; then
    IMG=$WORK/disk.img
    rm -f "$IMG"
    qemu-img create -q -f raw "$IMG" "$IMG_SIZE"
fi
if [ "$BACKEND" = qsd ]; then
    rm -f "$SOCK"
    # discard=unmap lets the guest's discards punch holes in the image file.
    QSD_CMD=(qemu-storage-daemon
        --blockdev "driver=file,node-name=file0,filename=$IMG,discard=unmap"
        --blockdev "driver=raw,node-name=disk0,file=file0,discard=unmap"
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$SOCK,writable=on,num-queues=$QUEUES")
    echo "run-blk.sh: back end: ${QSD_CMD[*]}" | tee "$WORK/backend.cmd" >&2
    "${QSD_CMD[@]}" > "$WORK/backend.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
    [ -S "$SOCK" ] || { echo "run-blk.sh: qemu-storage-daemon did not create $SOCK:" >&2; cat "$WORK/backend.log" >&2; exit 1; }
elif [ "$BACKEND" = cmd ]; then
    [ -n "$BACKEND_CMD" ] || { echo "run-blk.sh: --backend cmd needs --backend-cmd" >&2; exit 2; }
    rm -f "$SOCK"
    cmd=${BACKEND_CMD//\{sock\}/$SOCK}; cmd=${cmd//\{image\}/$IMG}; cmd=${cmd//\{queues\}/$QUEUES}
    echo "run-blk.sh: back end: $cmd" | tee "$WORK/backend.cmd" >&2
    bash -c "exec $cmd" > "$WORK/backend.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.1; done
    [ -S "$SOCK" ] || { echo "run-blk.sh: back end did not listen on $SOCK:" >&2; cat "$WORK/backend.log" >&2; exit 1; }
elif [ "$BACKEND" = external ]; then
    [ -S "$SOCK" ] || { echo "run-blk.sh: no socket at $SOCK (--backend external needs a listening back end)" >&2; exit 2; }
else
    echo "run-blk.sh: --backend qsd|external|cmd" >&2; exit 2
fi

# TCG pitfall: under host load the guest's TSC calibration against the PIT fails and the kernel
# hangs early ("tsc: Unable to calibrate against PIT"). TCG's guest TSC runs at the host's TSC
# rate, so hand the kernel that rate and skip the calibration. And the default CPU model
# (qemu64) is vendor AMD without constant_tsc, so with 2 vCPUs the kernel calls the TSCs
# unsynchronized and falls back to the jiffies clocksource: every fio latency would then be a
# multiple of 4 ms (HZ=250). tsc=reliable keeps the TSC clocksource (TCG's TSC is the host's).
TSC_KHZ=$(awk -F': ' '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
KAPPEND="console=ttyS0 quiet tsc_early_khz=$TSC_KHZ tsc=reliable vtest=$TEST $FIO $APPEND"

QEMU_CMD=(qemu-system-x86_64
    -M microvm,accel=tcg,acpi=on,memory-backend=mem
    -object "memory-backend-memfd,id=mem,size=$MEM,share=on"
    -m "$MEM" -smp "$SMP" -nographic -no-reboot
    # microvm's virtio-mmio transports default to the legacy (version 1) interface, which
    # libvhost-user back ends refuse ("virtio legacy devices aren't supported").
    -global virtio-mmio.force-legacy=false
    -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.cpio.gz"
    -append "$KAPPEND"
    -chardev "socket,id=c0,path=$SOCK"
    -device "vhost-user-blk,chardev=c0,num-queues=$QUEUES"
    "${EXTRA[@]}")
printf '%q ' "${QEMU_CMD[@]}" > "$WORK/qemu.cmd"; echo >> "$WORK/qemu.cmd"
echo "run-blk.sh: qemu: $(cat "$WORK/qemu.cmd")" >&2

echo "run-blk.sh: host loadavg $(cat /proc/loadavg), nproc $(nproc)" | tee "$WORK/host.txt" >&2

if [ "$TEST" = shell ]; then
    # Interactive: the console is the terminal (Ctrl-A X quits QEMU); no log, no time bound.
    set +e; "${QEMU_CMD[@]}"; exit $?
fi

# Each console line is prefixed with the host's seconds since QEMU was started.
t0=${EPOCHREALTIME/./}
set +e
timeout -k 5 "$TIMEOUT" "${QEMU_CMD[@]}" < /dev/null 2>&1 | while IFS= read -r line; do
    t=${EPOCHREALTIME/./}; us=$((t - t0)); line=${line%$'\r'}
    printf '[host %4d.%03d] %s\n' $((us / 1000000)) $((us / 1000 % 1000)) "$line"
done > "$LOG"
rc=${PIPESTATUS[0]}
set -e

grep -E 'VTEST-(INIT|MODULES|BLK|RESULT|DONE|NOTE|WARN)' "$LOG" | sed 's/^\[host *\([0-9.]*\)\] /host=\1 /' || true
if [ "$rc" = 124 ]; then echo "run-blk.sh: TIMEOUT after ${TIMEOUT}s (log $LOG)" >&2; fi
echo "run-blk.sh: log $LOG, qemu exit $rc" >&2
grep -q 'VTEST-DONE status=pass' "$LOG"
