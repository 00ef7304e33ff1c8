#!/usr/bin/env bash
# Soak of our vhost-user daemon: see --help.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: eng/soak.sh [--minutes M] [--sample-seconds S] [--out DIR] [--gen0 BYTES] [--no-net] [--no-build] [-- SOAK-ARGS...]

Starts two instances of our vhost-user daemon (samples/Virtio.VhostUserDaemon): one serving a
virtio-blk disk (a sparse 64 MiB image in a temporary directory, io_uring engine, one queue), one
serving virtio-net on a tap inside a private network namespace this script creates (tap up as
10.0.2.1/24, 10.0.2.15 a permanent neighbour; no traffic leaves the namespace). Then it runs
`Virtio.Bench soak` (the library's own front end, VhostUserFrontEnd) against both for M minutes:

  - blk: random 4 KiB reads and writes, at most 8 in flight and 2000/s; every write carries a
    generation stamp and is recorded when acknowledged, every read is checked;
  - net: ARP and ICMP echo requests to 10.0.2.1 at most 500 frames/s, replies counted;
  - each connection lasts 2-6 s, then disconnects: half cleanly (drain, GET_VRING_BASE), half
    abruptly (the socket closed with requests in flight; the next connection collects what the
    daemon drained from the used ring). Every reconnect hands the daemon the in-flight buffer from
    the first connection's GET_INFLIGHT_FD with SET_INFLIGHT_FD;
  - about every 7 s (per device) a new SET_MEM_TABLE while requests are in flight: the same pages
    through fresh memfd fds, mapped at new host addresses;
  - every S seconds (default 10) it samples each daemon's fd count (/proc/PID/fd), VmRSS and
    mapping count: one progress line and one CSV row.

After M minutes a verify pass reads every block back and counts lost acknowledged writes. The last
line is
  soak: minutes=M reconnects=R memtable_changes=K blk_ops=N net_frames=F lost_writes=L fd_slope=X/min rss_slope=Y KiB/min
where the slopes are least-squares fits over the samples after the first 20% of the run (the
warm-up), the larger of the two daemons'. Exit status 1 when lost_writes > 0, a read was corrupt,
a request failed, the net peer never answered, fd_slope > 0.5/min or rss_slope > 256 KiB/min
(change with -- --max-fd-slope N --max-rss-slope N); 2 on bad arguments.

Options:
  --minutes M         load duration (default 30; fractions allowed)
  --sample-seconds S  seconds between samples (default 10)
  --out DIR           where the CSV and the daemons' logs go (default /tmp/virtio-soak-DATE-PID;
                      kept, paths printed)
  --gen0 BYTES        the daemons' GC gen0 budget, DOTNET_GCgen0size (default 0x100000, 1 MiB;
                      "" for the runtime's default). With the default budget the daemons did not
                      GC once in their first 14 minutes of a soak (dotnet-counters), so RSS grew
                      with garbage; a small budget makes the RSS slope measure what stays
  --no-net            blk only (no namespace; needs no root)
  --no-build          use the existing Release build
  -- SOAK-ARGS        passed to `Virtio.Bench soak` (see `dotnet .../Virtio.Bench.dll soak --help`)

Needs root, iproute2 and /dev/net/tun for the net part. Builds samples/Virtio.Bench (Release, which
builds the daemon too) unless --no-build. On exit or Ctrl+C it stops both daemons, deletes the
namespace and the temporary directory.
USAGE
}

minutes=30
sample=10
out=""
gen0=0x100000
net=1
build=1
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --sample-seconds) sample="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --gen0) gen0="$2"; shift 2 ;;
    --no-net) net=0; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/samples/Virtio.Bench/bin/Release/net10.0"
daemon="$repo/samples/Virtio.VhostUserDaemon/bin/Release/net10.0/Virtio.VhostUserDaemon.dll"
out="${out:-/tmp/virtio-soak-$(date +%Y%m%d-%H%M%S)-$$}"
mkdir -p "$out"
tmp="$(mktemp -d /tmp/virtio-soak-tmp.XXXXXX)"
ns="virtio-soak-$$"
tap="soak0"
pids=()
bench=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$bench" ]] && kill -0 "$bench" 2>/dev/null; then kill -KILL "$bench" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $net -eq 1 ]]; then ip netns delete "$ns" 2>/dev/null || true; fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
# Ctrl+C or TERM: the bench stops its load, verifies and summarises (bounded); then cleanup. It gets
# SIGTERM: a background job of a script starts with SIGINT ignored.
forward() { [[ -n "$bench" ]] && kill -TERM "$bench" 2>/dev/null || true; }
trap forward INT TERM

if [[ $net -eq 1 && $EUID -ne 0 ]]; then
  echo "soak.sh: the net part needs root (a tap in a private namespace); run as root or with --no-net" >&2
  exit 2
fi

if [[ $build -eq 1 ]]; then
  echo "# building samples/Virtio.Bench (Release)"
  dotnet build "$repo/samples/Virtio.Bench" -c Release -warnaserror -nologo -v q > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
fi

wait_socket() {
  for _ in $(seq 200); do [[ -S "$1" ]] && return 0; sleep 0.05; done
  echo "soak.sh: $1 did not appear; daemon log:" >&2; cat "$2" >&2; return 1
}

if [[ -n "$gen0" ]]; then export DOTNET_GCgen0size="$gen0"; fi
truncate -s 64M "$tmp/disk.img"
dotnet "$daemon" --socket "$tmp/blk.sock" --blk "$tmp/disk.img,queues=1" > "$out/daemon-blk.log" 2>&1 &
pids+=($!)
wait_socket "$tmp/blk.sock" "$out/daemon-blk.log"
args=(--blk-socket "$tmp/blk.sock")

if [[ $net -eq 1 ]]; then
  ip netns add "$ns"
  ip netns exec "$ns" dotnet "$daemon" --socket "$tmp/net.sock" --net "tap=$tap" > "$out/daemon-net.log" 2>&1 &
  pids+=($!)
  wait_socket "$tmp/net.sock" "$out/daemon-net.log"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add 10.0.2.1/24 dev "$tap"
  ip -n "$ns" link set "$tap" up
  ip -n "$ns" neigh replace 10.0.2.15 lladdr 52:54:00:50:ac:0f dev "$tap" nud permanent
  args+=(--net-socket "$tmp/net.sock")
fi

echo "# soak: daemons ${pids[*]} (DOTNET_GCgen0size=${gen0:-default}), logs and CSV in $out"
env -u DOTNET_GCgen0size dotnet "$bin/Virtio.Bench.dll" soak "${args[@]}" --minutes "$minutes" --sample-seconds "$sample" --csv "$out/soak.csv" "${extra[@]}" &
bench=$!
status=0
while true; do
  wait "$bench" && status=0 || status=$?
  kill -0 "$bench" 2>/dev/null || break   # a trapped signal interrupted wait: the bench still runs
done
bench=""
warnings=$(cat "$out"/daemon-*.log | grep -cE ' (warn|fail|crit):' || true)
echo "# soak: daemon log lines at warning or above: ${warnings:-0} (in $out/daemon-*.log)"
exit "$status"
