#!/usr/bin/env bash
# Coverage-guided fuzzing of guest- and front-end-controlled input (docs/fuzzing.md):
#   bash eng/fuzz.sh --list                          the targets
#   bash eng/fuzz.sh TARGET --seconds N [--execs E] [--out DIR] [--no-build] [--trx FILE]
#                                                    build, instrument, run afl-fuzz N seconds
#                                                    (--execs E: or until about E executions, if sooner)
#   bash eng/fuzz.sh TARGET --replay FILE|DIR...     run inputs once, uninstrumented, and print what threw
# A run ends with exactly one line `fuzz: target=T execs=N crashes=C hangs=H` (from afl-fuzz's
# fuzzer_stats) and exits nonzero when C or H is not 0 or afl-fuzz failed. Findings stay in
# DIR (default artifacts/fuzz/TARGET): DIR/default/crashes and DIR/default/hangs, for --replay.
# --no-build: use the Release build already there (CI builds the solution first). --trx FILE: also
# write the run as one test result, Fuzz.TARGET, in a TRX report (CI's summary counts it).
# Needs afl-fuzz (Debian package afl++, installed here when run as root) and the local dotnet tool
# sharpfuzz (.config/dotnet-tools.json, restored here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
project=tests/Virtio.Fuzz
build_dir=$project/bin/Release/net10.0
# FUZZ_WORK: where the instrumented copy and the findings go (a long run in the background can
# have its own, so that a rebuild meanwhile does not re-instrument the copy under it).
fuzz_dir=${FUZZ_WORK:-artifacts/fuzz}
# The assemblies whose code the targets exercise: only these are instrumented (SharpFuzz's own,
# the runtime's and the test helpers' coverage would be noise).
instrumented=(Virtio.Core Virtio.Blk Virtio.Net Virtio.VhostUser)

target="" seconds=60 execs_cap="" out="" replay=() no_build="" trx=""
while [ $# -gt 0 ]; do
  case "$1" in
    --list) target=--list; shift;;
    --seconds) seconds=$2; shift 2;;
    --execs) execs_cap=$2; shift 2;;
    --out) out=$2; shift 2;;
    --no-build) no_build=1; shift;;
    --trx) trx=$2; shift 2;;
    --replay) shift; replay=("$@"); [ ${#replay[@]} -gt 0 ] || { echo "fuzz: --replay needs files" >&2; exit 2; }; break;;
    -h|--help) sed -n 2,14p "$0"; exit 0;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2;;
    *) target=$1; shift;;
  esac
done
[ -n "$target" ] || { sed -n 2,14p "$0" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

build() {
  if [ -n "$no_build" ] && [ -f "$build_dir/Virtio.Fuzz.dll" ]; then return; fi
  dotnet build "$project" -c Release -warnaserror -nologo -v q -clp:NoSummary >"$log" 2>&1 \
    || { cat "$log" >&2; echo "fuzz: the build of $project failed" >&2; exit 1; }
}

if [ "$target" = --list ]; then
  build
  exec dotnet "$build_dir/Virtio.Fuzz.dll" list
fi
build
if [ ${#replay[@]} -gt 0 ]; then
  exec dotnet "$build_dir/Virtio.Fuzz.dll" replay "$target" "${replay[@]}"
fi
dotnet "$build_dir/Virtio.Fuzz.dll" list | grep -qx -- "$target" \
  || { echo "fuzz: no target '$target' (bash eng/fuzz.sh --list)" >&2; exit 2; }
case "$seconds" in ''|*[!0-9]*) echo "fuzz: --seconds takes a whole number" >&2; exit 2;; esac
exec_limit=()
if [ -n "$execs_cap" ]; then
  case "$execs_cap" in *[!0-9]*) echo "fuzz: --execs takes a whole number" >&2; exit 2;; esac
  exec_limit=(-E "$execs_cap")
fi
corpus=$project/Corpus/$target
[ -n "$(ls -A "$corpus" 2>/dev/null)" ] || { echo "fuzz: no seed inputs in $corpus" >&2; exit 1; }

# afl-fuzz: Debian's afl++ package.
if ! command -v afl-fuzz >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "fuzz: afl-fuzz is missing: install the Debian package afl++ (apt-get install afl++) or run as root" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends afl++; } >"$log" 2>&1 \
    || { cat "$log" >&2; echo "fuzz: could not install the Debian package afl++" >&2; exit 1; }
  command -v afl-fuzz >/dev/null || { echo "fuzz: the Debian package afl++ installed no afl-fuzz" >&2; exit 1; }
fi
dotnet tool restore >"$log" 2>&1 || { cat "$log" >&2; echo "fuzz: dotnet tool restore (SharpFuzz.CommandLine) failed" >&2; exit 1; }

# Instrument a copy of the build (the build output itself stays uninstrumented for --replay),
# again only when the build changed: one instrumentation serves every target of a CI run.
bin=$fuzz_dir/bin
stamp=$(cd "$build_dir" && sha256sum "${instrumented[@]/%/.dll}" Virtio.Fuzz.dll | sha256sum | cut -c1-16)
if [ "$(cat "$bin/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$bin"; mkdir -p "$bin"
  cp -r "$build_dir"/. "$bin"/
  for assembly in "${instrumented[@]}"; do
    dotnet tool run sharpfuzz "$bin/$assembly.dll" >"$log" 2>&1 \
      || { cat "$log" >&2; echo "fuzz: sharpfuzz could not instrument $assembly.dll" >&2; exit 1; }
  done
  echo "$stamp" >"$bin/.stamp"
fi

out=${out:-$fuzz_dir/$target}
rm -rf "$out"; mkdir -p "$out"
# AFL_SKIP_BIN_CHECK: the program afl-fuzz starts is dotnet, not an instrumented binary (SharpFuzz
# speaks the fork-server protocol from managed code). AFL_NO_AFFINITY: the machine is shared, so
# no core is pinned. A core_pattern that pipes to a program (systemd-coredump, apport) makes
# afl-fuzz refuse to start; rather than rewrite a machine-wide kernel setting, the run says it
# does not care: a crash here is a managed exception SharpFuzz reports, not a core dump.
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# The .NET runtime starts and JIT-compiles the target before the first input: give it 30 s.
export AFL_FORKSRV_INIT_TMOUT=30000
case "$(cat /proc/sys/kernel/core_pattern 2>/dev/null)" in
  '|'*) echo "fuzz: core_pattern pipes to a program: left as it is (AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1)";;
esac
# -t 2000: an input's budget; a steady-state input takes microseconds, a first one that JIT-compiles
# a new path tens of milliseconds, so 2 s is a hang and nothing else. -m none: the .NET runtime
# reserves far more address space than afl-fuzz's default limit.
afl_rc=0
afl-fuzz -i "$corpus" -o "$out" -t 2000 -m none -V "$seconds" "${exec_limit[@]}" -- "$(command -v dotnet)" "$bin/Virtio.Fuzz.dll" fuzz "$target" \
  >"$out/afl-fuzz.log" 2>&1 || afl_rc=$?
stats=$out/default/fuzzer_stats
stat() { sed -n "s/^$1 *: *//p" "$stats" 2>/dev/null | head -1; }
execs=$(stat execs_done) crashes=$(stat saved_crashes) hangs=$(stat saved_hangs) run_time=$(stat run_time)
# The TRX report of --trx: one result, passed or failed with the final line as its message.
report() {
  [ -z "$trx" ] || python3 eng/ci_summary.py --write-result "$trx" "Fuzz.$target" "$1" "$2"
}
if [ ! -f "$stats" ] || [ -z "$execs" ]; then
  tail -n 30 "$out/afl-fuzz.log" >&2
  echo "fuzz: afl-fuzz exited $afl_rc without statistics (log: $out/afl-fuzz.log)" >&2
  report Failed "afl-fuzz exited $afl_rc without statistics"
  echo "fuzz: target=$target execs=0 crashes=0 hangs=0"
  exit 1
fi
echo "fuzz: $target: ${run_time:-?} s, $((execs / (${run_time:-0} > 0 ? run_time : 1))) execs/s, $(stat corpus_count) inputs in the queue, stability $(stat stability), findings in $out/default"
rc=0
if [ "${crashes:-0}" -ne 0 ] || [ "${hangs:-0}" -ne 0 ]; then
  echo "fuzz: triage with: bash eng/fuzz.sh $target --replay $out/default/crashes $out/default/hangs"
  rc=1
elif [ "$afl_rc" -ne 0 ]; then
  tail -n 30 "$out/afl-fuzz.log" >&2
  echo "fuzz: afl-fuzz exited $afl_rc (log: $out/afl-fuzz.log)"
  rc=1
fi
line="fuzz: target=$target execs=$execs crashes=${crashes:-0} hangs=${hangs:-0}"
if [ $rc -eq 0 ]; then report Passed "$line"; else report Failed "$line (findings in $out/default; bash eng/fuzz.sh $target --replay DIR)"; fi
echo "$line"
exit $rc
