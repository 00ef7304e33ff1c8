#!/usr/bin/env bash
# Turns the CSV of `Virtio.Bench sweep --csv FILE` into a PNG: IOPS (median of the rounds, bars from
# the slowest to the fastest round) against queue depth, one line per back end and mode.
#
#   samples/Virtio.Bench/plot-sweep.sh sweep.csv sweep.png ["title"]
#
# Needs gnuplot with the pngcairo terminal and awk. It installs nothing: on Debian 12,
# `apt-get install gnuplot-nox` provides gnuplot.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 IN.csv OUT.png [title]" >&2
  exit 2
fi
csv=$1 png=$2 title=${3:-"vhost-user-blk IOPS against queue depth"}
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "$0: needs gnuplot, which is not installed (Debian: apt-get install gnuplot-nox); nothing was plotted" >&2
  exit 3
fi
if ! command -v awk >/dev/null 2>&1; then
  echo "$0: needs awk; nothing was plotted" >&2
  exit 3
fi
if ! gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo; then
  echo "$0: this gnuplot has no pngcairo terminal (Debian's gnuplot-nox has it); nothing was plotted" >&2
  exit 3
fi
expected="mode,rw,qd,backend,rounds,iops_median,iops_min,iops_max"
if ! head -n 1 "$csv" | grep -q "^$expected"; then
  echo "$0: $csv does not start with the sweep header ($expected,...)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One data file per back end and mode: qd, median, min, max.
awk -F, -v dir="$work" 'NR > 1 { key = $4 " " $1; if (!(key in n)) { n[key] = ++count; print count "\t" key > (dir "/series") } print $3, $6, $7, $8 > (dir "/" n[key] ".dat") }' "$csv"
if [ ! -s "$work/series" ]; then
  echo "$0: $csv has no rows" >&2
  exit 2
fi
rw=$(awk -F, 'NR == 2 { print $2 }' "$csv")

plots=""
while IFS=$'\t' read -r index label; do
  plots+="${plots:+, }'$work/$index.dat' using 1:2:3:4 with yerrorlines title '$label'"
done < "$work/series"

gnuplot <<GNUPLOT
set terminal pngcairo noenhanced size 900,560 font "sans,10"
set output '$png'
set title "$title"
set xlabel "queue depth (one queue, $rw)"
set ylabel "IOPS (median of rounds; bars: slowest to fastest round)"
set logscale x 2
set xtics (1, 2, 4, 8, 16, 32, 64, 128, 256)
set format y "%.0s%c"
set yrange [0:*]
set offsets graph 0.03, graph 0.03, 0, 0
set grid
set key top left
plot $plots
GNUPLOT
echo "wrote $png"
