#!/bin/sh
# /init of the validation guest (busybox ash). Copied into the initramfs by build-guest.sh.
#
# The kernel hands every unknown "name=value" boot parameter to init as an environment variable
# (quotes stripped), so the test and its knobs come from the kernel command line:
#   vtest=NAME        blk-all | blk-check | fio-verify | fio-perf | flush | discard
#                     | write-zeroes | crash-write | crash-verify | migrate-verify | net | shell | none
#                     (default none: just report and power off; blk-check = blk-all less fio-perf)
#   vt_dev=/dev/vda   block device under test
#   vt_size=32M       bytes per fio job (jobs use disjoint regions: offset_increment=vt_size)
#   vt_runtime=10     seconds per fio run
#   vt_numjobs=2      jobs of each fio-verify run
#   vt_bs="4k 64k"    block sizes of fio-verify
#   vt_qd="1 32"      queue depths of fio-verify and fio-perf
#   vt_engine=libaio  fio ioengine
#   vt_backlog=64     fio verify_backlog (verify reads interleaved with the writes); 0 = off
#   vt_fio_extra=""   more fio options, appended to every run
#   vt_ip=10.99.0.2/24 vt_peer=10.99.0.1 vt_iperf_time=5   for vtest=net
#   vt_ping_count=3 vt_ping_interval=1   for vtest=net: the pings before iperf3; net-ping lists
#                     each round-trip time in ms as rtts=a,b,c (busybox ping, -i may be fractional)
#   vt_writers=4 vt_blocks=100000 vt_nonce=0   for vtest=crash-write: vt_writers parallel writers,
#                     writer w writes 4 KiB block w, w+W, w+2W, ... (W = vt_writers), each with
#                     O_DIRECT + fsync, and prints VTEST-ACK w=W seq=N after the write returned
#   vt_acked=a,b,c,d  for vtest=crash-verify: the last acknowledged seq of each writer (-1: none)
#   vt_rounds=2 vt_reverify_loops=8   for vtest=migrate-verify: rounds one after another, each a
#                     fio run writing vt_size bytes with crc32c verify (one job, iodepth vt_qd's first
#                     value, block size vt_bs's first; migrate-verify-R) and a run reading them back
#                     and verifying them vt_reverify_loops times (migrate-reverify-R); while one runs, a
#                     VTEST-MIG-IO line every 0.5 s says how far it is, so the host can migrate the
#                     guest in the middle of a run and see the same run go on (and verify clean) on
#                     the destination
#   vt_resizes=1 vt_resize_wait=40   for vtest=resize: prints VTEST-RESIZE-READY sectors=N, then
#                     waits (at most vt_resize_wait s each) for vt_resizes changes of the disk's size,
#                     printing VTEST-RESIZED n=I sectors=N after each, and writes, reads back and
#                     compares 4 KiB past the old end after each growth
#   vt_reboots=3      for vtest=reboot-loop: a counter in the disk's first 512 bytes; below
#                     vt_reboots it is bumped, a block is written and read back, VTEST-REBOOT n=N
#                     is printed and the guest reboots (QEMU without -no-reboot; reboot=t)
#
# Output lines for the host to parse (one line each, fields space-separated key=value):
#   VTEST-INIT uptime=S kernel=...
#   VTEST-RESULT name=... status=pass|fail|skip [metrics...]
#   FIO-TERSE name=... <fio terse v3 line>
#   VTEST-DMESG <line>            virtio lines of dmesg, and any error/warning lines
#   VTEST-DONE status=pass|fail passed=N failed=N skipped=N uptime=S
#   VTEST-ACK w=W seq=N           crash-write: block N of writer W is acknowledged (durable)
#   VTEST-MIG-IO round=R phase=write|reverify writes=N reads=N uptime=S   migrate-verify: requests
#                                 the disk completed since that run began (from /sys/block/X/stat)
#   VTEST-RESIZE-READY / VTEST-RESIZED, VTEST-REBOOT   vtest=resize and vtest=reboot-loop (above)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp
mount -t tmpfs tmpfs /tmp

# util-linux's blkdiscard (busybox's has no -z)
BLKDISCARD=/usr/sbin/blkdiscard
uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "VTEST-INIT uptime=$(uptime_s) kernel=$(uname -r) clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"

: "${vtest:=none}" "${vt_dev:=/dev/vda}" "${vt_size:=32M}" "${vt_runtime:=10}" "${vt_numjobs:=2}"
: "${vt_bs:=4k 64k}" "${vt_qd:=1 32}" "${vt_engine:=libaio}" "${vt_backlog:=64}" "${vt_fio_extra:=}"
: "${vt_ip:=10.99.0.2/24}" "${vt_peer:=10.99.0.1}" "${vt_iperf_time:=5}"
: "${vt_ping_count:=3}" "${vt_ping_interval:=1}"

PASSED=0 FAILED=0 SKIPPED=0
result() { # name status [metrics...]
    n=$1 s=$2; shift 2
    echo "VTEST-RESULT name=$n status=$s $*"
    case $s in pass) PASSED=$((PASSED+1)) ;; skip) SKIPPED=$((SKIPPED+1)) ;; *) FAILED=$((FAILED+1)) ;; esac
}

finish() {
    dmesg | grep -E -i 'virtio|vd[a-z]|I/O error|blk_update_request|eth0' \
        | grep -v 'Command line' | sed 's/^/VTEST-DMESG /'
    dmesg | grep -E 'BUG:|WARNING:|Call Trace|Oops|hung_task' | sed 's/^/VTEST-DMESG-ERR /'
    st=pass; [ $FAILED -gt 0 ] && st=fail
    case $vtest in none|shell) ;; *) [ $((PASSED+FAILED)) -eq 0 ] && st=fail ;; esac
    echo "VTEST-DONE status=$st passed=$PASSED failed=$FAILED skipped=$SKIPPED uptime=$(uptime_s)"
    sync
    poweroff -f
}

t0=$(uptime_s)
for m in $(cat /etc/modules.order); do
    insmod /lib/modules/$m.ko || echo "VTEST-WARN insmod $m failed"
done
echo "VTEST-MODULES uptime=$(uptime_s) loaded=$(cut -d' ' -f1 /proc/modules | tr '\n' ',')"

wait_for() { # path seconds
    i=0
    while [ ! -e "$1" ] && [ $i -lt $(($2*10)) ]; do usleep 100000; i=$((i+1)); done
    [ -e "$1" ]
}

# ---- block helpers --------------------------------------------------------------------------
blk_ready() {
    if ! wait_for "$vt_dev" 10; then
        result blk-probe fail "reason=no_$vt_dev"
        return 1
    fi
    b=${vt_dev##*/}; q=/sys/block/$b/queue
    echo "VTEST-BLK dev=$vt_dev sectors=$(cat /sys/block/$b/size) nr_hw_queues=$(ls -d /sys/block/$b/mq/* 2>/dev/null | wc -l)" \
        "write_cache=$(tr ' ' '_' < $q/write_cache) discard_max_bytes=$(cat $q/discard_max_bytes)" \
        "write_zeroes_max_bytes=$(cat $q/write_zeroes_max_bytes) logical_block_size=$(cat $q/logical_block_size)" \
        "virtio_features=$(cat /sys/block/$b/device/features 2>/dev/null)"
    return 0
}
# /sys/block/X/stat: reads 1, writes 5, discards 12, flushes 16 (completed requests)
blk_stat() { awk -v f=$1 '{print $f}' /sys/block/${vt_dev##*/}/stat; }

# fio_run NAME FIO-ARGS...: runs fio with terse output; prints FIO-TERSE and VTEST-RESULT.
fio_run() {
    name=$1; shift
    out=$(fio --output-format=terse --terse-version=3 --eta=never --group_reporting \
        --filename="$vt_dev" --direct=1 --ioengine="$vt_engine" "$@" $vt_fio_extra 2>/tmp/fio.err)
    rc=$?
    line=$(echo "$out" | grep '^3;' | tail -1)
    echo "FIO-TERSE name=$name $line"
    # terse v3: 5 error; read 6 kb 7 bw 8 iops, 14-17 clat min/max/mean/dev (us), 18-37 clat
    # percentiles ("99.000000%=N"); write: same layout from 47 (iops 49, clat mean 57, pct 59-78)
    metrics=$(echo "$line" | awk -F';' '
        function pct(from, want,   i, kv) {
            for (i = from; i < from + 20; i++) { split($i, kv, "="); if (kv[1] == want) return kv[2] }
            return "-"
        }
        NF > 80 {
            printf "err=%s r_iops=%s r_bw_kib=%s r_clat_mean_us=%.1f r_clat_p50_us=%s r_clat_p99_us=%s", $5, $8, $7, $16, pct(18, "50.000000%"), pct(18, "99.000000%")
            printf " w_iops=%s w_bw_kib=%s w_clat_mean_us=%.1f w_clat_p50_us=%s w_clat_p99_us=%s", $49, $48, $57, pct(59, "50.000000%"), pct(59, "99.000000%")
        }')
    if [ $rc -eq 0 ] && [ -n "$line" ]; then
        result "$name" pass "$metrics"
    else
        result "$name" fail "rc=$rc $metrics"
        sed 's/^/VTEST-FIO-ERR /' /tmp/fio.err | head -20
    fi
}

t_fio_verify() {
    for bs in $vt_bs; do
        for qd in $vt_qd; do
            fio_run "verify-randwrite-$bs-qd$qd-j$vt_numjobs" --name=v --rw=randwrite --bs=$bs \
                --iodepth=$qd --numjobs=$vt_numjobs --size=$vt_size --offset_increment=$vt_size \
                --runtime=$vt_runtime --verify=crc32c --do_verify=1 --verify_fatal=1 \
                --verify_backlog=$vt_backlog --randseed=$qd
        done
    done
}

t_fio_perf() {
    # Fill the region first so reads hit written data, not holes of a sparse image.
    fio_run perf-prefill --name=fill --rw=write --bs=1M --iodepth=8 --size=$vt_size
    for qd in $vt_qd; do
        for rw in randread randwrite; do
            fio_run "perf-$rw-4k-qd$qd" --name=p --rw=$rw --bs=4k --iodepth=$qd --numjobs=1 \
                --size=$vt_size --runtime=$vt_runtime --time_based
        done
    done
}

t_flush() {
    # The Linux driver sends VIRTIO_BLK_T_FLUSH only while the cache is write back. With
    # VIRTIO_BLK_F_CONFIG_WCE the driver's cache_type attribute writes the device's wce field.
    ct=/sys/block/${vt_dev##*/}/cache_type
    if [ "$(cat /sys/block/${vt_dev##*/}/queue/write_cache)" != "write back" ] && [ -w $ct ]; then
        echo "VTEST-NOTE cache_type=$(cat $ct): writing 'write back' to $ct"
        echo "write back" > $ct 2>/dev/null || echo "VTEST-NOTE cache_type write refused"
    fi
    f0=$(blk_stat 16)
    fio_run flush-randwrite-4k-fsync1 --name=f --rw=randwrite --bs=4k --iodepth=1 --size=4M \
        --fsync=1 --runtime=$vt_runtime --verify=crc32c --do_verify=1 --verify_fatal=1
    f1=$(blk_stat 16)
    wc=$(cat /sys/block/${vt_dev##*/}/queue/write_cache)
    if [ "$wc" != "write back" ]; then
        result flush-requests skip "reason=write_cache_is_${wc// /_}"
    elif [ $((f1 - f0)) -gt 0 ]; then
        result flush-requests pass "flushes=$((f1 - f0))"
    else
        result flush-requests fail "flushes=0"
    fi
}

t_discard() {
    dmax=$(cat /sys/block/${vt_dev##*/}/queue/discard_max_bytes)
    if [ "$dmax" = 0 ]; then result discard skip "reason=no_VIRTIO_BLK_F_DISCARD"; return; fi
    d0=$(blk_stat 12)
    if $BLKDISCARD -o 0 -l 8388608 "$vt_dev" 2>/tmp/bd.err; then
        result discard-blkdiscard pass "bytes=8388608"
    else
        result discard-blkdiscard fail "err=$(tr ' \n' '__' < /tmp/bd.err)"
    fi
    fio_run discard-fio-trim --name=t --rw=trim --bs=64k --iodepth=1 --ioengine=sync --offset=8M --size=8M
    d1=$(blk_stat 12)
    if [ $((d1 - d0)) -gt 0 ]; then result discard-requests pass "discards=$((d1 - d0))"
    else result discard-requests fail "discards=0"; fi
}

t_write_zeroes() {
    zmax=$(cat /sys/block/${vt_dev##*/}/queue/write_zeroes_max_bytes)
    [ "$zmax" = 0 ] && echo "VTEST-NOTE write_zeroes_max_bytes=0: BLKZEROOUT falls back to writing zero pages"
    M=1048576
    head -c $M /dev/zero | tr '\000' '\245' > /tmp/pat
    head -c $((4*M)) /dev/zero > /tmp/zero4
    # 16..24 MiB = pattern, then zero 18..22 MiB; expect pattern, zeroes, pattern.
    i=16; while [ $i -lt 24 ]; do dd if=/tmp/pat of="$vt_dev" bs=$M seek=$i conv=notrunc 2>/dev/null; i=$((i+1)); done
    sync
    if ! $BLKDISCARD -z -o $((18*M)) -l $((4*M)) "$vt_dev" 2>/tmp/bd.err; then
        result write-zeroes fail "err=$(tr ' \n' '__' < /tmp/bd.err)"; return
    fi
    echo 3 > /proc/sys/vm/drop_caches
    ok=1
    dd if="$vt_dev" of=/tmp/z bs=$M skip=18 count=4 2>/dev/null; cmp -s /tmp/z /tmp/zero4 || ok=0
    for i in 16 17 22 23; do
        dd if="$vt_dev" of=/tmp/p bs=$M skip=$i count=1 2>/dev/null; cmp -s /tmp/p /tmp/pat || ok=0
    done
    if [ $ok = 1 ]; then result write-zeroes pass "bytes=$((4*M)) write_zeroes_max_bytes=$zmax"
    else result write-zeroes fail "content_mismatch write_zeroes_max_bytes=$zmax"; fi
}

# ---- front-end crash: acknowledged writes must survive a kill -9 of QEMU ------------------------
# Block N holds the line "vtest-block <N as %08d> <nonce>" and zeroes.
t_crash_write() {
    : "${vt_writers:=4}" "${vt_blocks:=100000}" "${vt_nonce:=0}"
    echo "VTEST-CRASH-WRITE writers=$vt_writers nonce=$vt_nonce"
    w=0
    while [ $w -lt $vt_writers ]; do
        (
            i=$w
            while [ $i -lt $vt_blocks ]; do
                printf 'vtest-block %08d %s\n' $i "$vt_nonce" \
                    | dd of="$vt_dev" bs=4096 seek=$i count=1 conv=sync,fsync,notrunc oflag=direct 2>/tmp/dd.$w.err \
                    || { echo "VTEST-CRASH-ERR w=$w seq=$i $(tr '\n' ' ' < /tmp/dd.$w.err)"; exit 1; }
                echo "VTEST-ACK w=$w seq=$i"
                i=$((i + vt_writers))
            done
        ) &
        w=$((w + 1))
    done
    wait
    result crash-write pass "blocks=$vt_blocks"
}

t_crash_verify() {
    : "${vt_acked:?}" "${vt_nonce:=0}"
    W=$(echo "$vt_acked" | tr ',' '\n' | wc -l)
    # Blocks up to the highest acknowledged one, read in one pass with O_DIRECT; with the zero
    # padding stripped each written block is one line, and every acknowledged one must be there.
    max=$(echo "$vt_acked" | tr ',' '\n' | sort -n | tail -1)
    n=$((max + 1))
    [ $n -lt 1 ] && n=1
    out=$(dd if="$vt_dev" bs=4096 count=$n iflag=direct 2>/dev/null | tr -d '\000' | awk -v W="$W" -v acked="$vt_acked" -v nonce="$vt_nonce" '
        BEGIN { split(acked, a, ",") }
        { got[$0] = 1 }
        END {
            checked = 0; bad = 0
            for (w = 0; w < W; w++) {
                for (i = w; i <= a[w + 1]; i += W) {
                    checked++
                    want = sprintf("vtest-block %08d %s", i, nonce)
                    if (!(want in got)) { bad++; if (bad <= 10) printf "VTEST-CRASH-MISSING w=%d seq=%d\n", w, i }
                }
            }
            printf "SUMMARY %d %d\n", checked, bad
        }')
    echo "$out" | grep '^VTEST-' || true
    set -- $(echo "$out" | grep '^SUMMARY')
    checked=${2:-0} bad=${3:-1}
    if [ "$bad" = 0 ] && [ "$checked" -gt 0 ]; then result crash-verify pass "checked=$checked acked=$vt_acked"
    else result crash-verify fail "checked=$checked missing=$bad acked=$vt_acked"; fi
}

# ---- live migration: verify runs the host migrates the guest in the middle of ------------------
# Each round writes vt_size bytes with crc32c verify (migrate-verify-R), then reads all of it back
# and verifies it vt_reverify_loops times (migrate-reverify-R: fio --verify_only). In the second
# phase almost every guest page the disk writes is a read's data that only the device writes,
# so a back end that does not log those writes while the RAM is copied leaves the destination a
# stale buffer, and fio sees it.
mig_phase() { # name phase fio-args...
    n=$1 ph=$2; shift 2
    w0=$(blk_stat 5) r0=$(blk_stat 1)
    (
        while :; do
            echo "VTEST-MIG-IO round=$r phase=$ph writes=$(($(blk_stat 5) - w0)) reads=$(($(blk_stat 1) - r0)) uptime=$(uptime_s)"
            usleep 500000
        done
    ) &
    mon=$!
    fio_run "$n" "$@"
    kill $mon 2>/dev/null; wait $mon 2>/dev/null
}

t_migrate_verify() {
    : "${vt_rounds:=2}" "${vt_reverify_loops:=8}"
    set -- $vt_bs; bs=$1
    set -- $vt_qd; qd=$1
    r=0
    while [ $r -lt $vt_rounds ]; do
        job="--name=m --rw=randwrite --bs=$bs --iodepth=$qd --numjobs=1 --size=$vt_size --verify=crc32c --verify_fatal=1 --randseed=$((r + 1))"
        mig_phase "migrate-verify-$r" write $job --do_verify=1 --verify_backlog=$vt_backlog
        mig_phase "migrate-reverify-$r" reverify $job --verify_only --loops=$vt_reverify_loops
        r=$((r + 1))
    done
}

t_net() {
    if ! wait_for /sys/class/net/eth0 10; then result net-probe fail reason=no_eth0; return; fi
    ip link set lo up
    ip link set eth0 up
    ip addr add "$vt_ip" dev eth0
    echo "VTEST-NET $(ip -o link show eth0 | tr -s ' ') features=$(cat /sys/class/net/eth0/device/features 2>/dev/null)"
    if ping -c "$vt_ping_count" -i "$vt_ping_interval" -W 2 "$vt_peer" > /tmp/ping.out 2>&1; then
        rtts=$(sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' /tmp/ping.out | tr '\n' ',')
        result net-ping pass "$(tail -1 /tmp/ping.out | tr ' ' '_')" "rtts=${rtts%,}"
    else
        result net-ping fail "$(tail -2 /tmp/ping.out | tr ' \n' '__')"; return
    fi
    for dir in send recv; do
        rev=; [ $dir = recv ] && rev=-R
        if iperf3 -c "$vt_peer" -t "$vt_iperf_time" $rev > /tmp/iperf.out 2>&1; then
            bps=$(grep -E 'receiver$' /tmp/iperf.out | tail -1 | awk '{print $7 "_" $8}')
            result "net-iperf3-tcp-$dir" pass "rate=$bps"
        else
            result "net-iperf3-tcp-$dir" fail "$(tail -3 /tmp/iperf.out | tr ' \n' '__')"
        fi
    done
}

# ---- resize and reboot-loop (issue 18: the capacity reaching the guest, resets) -------------
: "${vt_resizes:=1}" "${vt_resize_wait:=40}" "${vt_reboots:=3}"

# 4 KiB of a recognisable line at 512-byte sector $1, written with O_DIRECT and read back.
io_at_sector() {
    want="vtest-sector $1 $(uptime_s)"
    echo "$want" | dd of="$vt_dev" bs=512 seek="$1" count=8 conv=sync,fsync,notrunc oflag=direct 2>/tmp/io.err || return 1
    got=$(dd if="$vt_dev" bs=512 skip="$1" count=8 iflag=direct 2>>/tmp/io.err | tr -d '\000' | head -1)
    [ "$got" = "$want" ]
}

t_resize() {
    b=${vt_dev##*/}
    old=$(cat /sys/block/$b/size)
    echo "VTEST-RESIZE-READY sectors=$old"
    n=0
    while [ $n -lt "$vt_resizes" ]; do
        n=$((n+1)) i=0 now=$old
        while [ "$now" = "$old" ] && [ $i -lt $((vt_resize_wait*10)) ]; do usleep 100000; i=$((i+1)); now=$(cat /sys/block/$b/size); done
        if [ "$now" = "$old" ]; then result resize fail "n=$n reason=unchanged sectors=$old"; return; fi
        echo "VTEST-RESIZED n=$n sectors=$now"
        if [ "$now" -gt "$old" ]; then
            # The first 4 KiB past the old end: refused by both the guest and the device before.
            if ! io_at_sector "$old"; then result resize fail "n=$n reason=io_past_old_end sector=$old $(tr ' \n' '__' < /tmp/io.err)"; return; fi
        fi
        old=$now
    done
    result resize pass "changes=$n sectors=$old"
}

t_reboot_loop() {
    count=$(dd if="$vt_dev" bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\000' | sed -n 's/^vtest-reboots \([0-9]*\)$/\1/p' | head -1)
    count=${count:-0}
    if ! io_at_sector 8; then result reboot-loop fail "boot=$count reason=io"; return; fi
    if [ "$count" -lt "$vt_reboots" ]; then
        echo "vtest-reboots $((count+1))" | dd of="$vt_dev" bs=512 count=1 conv=sync,fsync,notrunc oflag=direct 2>/dev/null
        echo "VTEST-REBOOT n=$((count+1))"
        sync
        reboot -f
        sleep 30 # reboot -f returns at once; the reset comes
    fi
    result reboot-loop pass "reboots=$count"
}

case $vtest in
    none) ;;
    shell) echo "VTEST-SHELL (exit to power off)"; setsid cttyhack sh ;;
    fio-verify) blk_ready && t_fio_verify ;;
    fio-perf) blk_ready && t_fio_perf ;;
    flush) blk_ready && t_flush ;;
    discard) blk_ready && t_discard ;;
    write-zeroes) blk_ready && t_write_zeroes ;;
    blk-all) blk_ready && { t_fio_verify; t_flush; t_discard; t_write_zeroes; t_fio_perf; } ;;
    blk-check) blk_ready && { t_fio_verify; t_flush; t_discard; t_write_zeroes; } ;;
    crash-write) blk_ready && t_crash_write ;;
    crash-verify) blk_ready && t_crash_verify ;;
    migrate-verify) blk_ready && t_migrate_verify ;;
    net) t_net ;;
    resize) blk_ready && t_resize ;;
    reboot-loop) blk_ready && t_reboot_loop ;;
    *) result "$vtest" fail reason=unknown_test ;;
esac
finish
