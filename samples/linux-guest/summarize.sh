#!/usr/bin/env bash
# Puts the VTEST-RESULT lines of one or more run-*.sh console logs side by side, one Markdown row
# per result, one column per log: status, then for fio results the IOPS and clat p50 / mean / p99
# (us) of the direction that moved data (writes for verify runs: their read side is the verify
# phase). Use it to compare a back end with the reference from the same session:
#
#   summarize.sh /tmp/vtest-blk.qsd/console.log /tmp/vtest-blk.ours/console.log
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: summarize.sh console.log..." >&2; exit 2; }

awk '
FNR == 1 { nlog++; hdr[nlog] = FILENAME }
/VTEST-RESULT / {
    sub(/^.*VTEST-RESULT /, "")
    delete kv
    for (i = 1; i <= NF; i++) { eq = index($i, "="); if (eq) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    n = kv["name"]
    if (!(n in seen)) { seen[n] = 1; order[++nn] = n }
    cell = kv["status"]
    d = ""
    if (("w_iops" in kv) && kv["w_iops"] + 0 > 0 && (n ~ /^verify|^flush/ || kv["r_iops"] + 0 == 0)) d = "w"
    else if (("r_iops" in kv) && kv["r_iops"] + 0 > 0) d = "r"
    if (d != "") cell = cell sprintf(" %s %s iops, %s / %s / %s", d, kv[d "_iops"], kv[d "_clat_p50_us"], kv[d "_clat_mean_us"], kv[d "_clat_p99_us"])
    res[n, nlog] = cell
}
/VTEST-INIT / { for (i = 1; i <= NF; i++) if ($i ~ /^uptime=/) init[nlog] = substr($i, 8) }
END {
    printf "| result |"; for (l = 1; l <= nlog; l++) printf " %s |", hdr[l]; print ""
    printf "|---|"; for (l = 1; l <= nlog; l++) printf "---|"; print ""
    printf "| guest uptime at /init (s) |"; for (l = 1; l <= nlog; l++) printf " %s |", init[l]; print ""
    for (k = 1; k <= nn; k++) {
        n = order[k]; printf "| %s |", n
        for (l = 1; l <= nlog; l++) printf " %s |", ((n, l) in res) ? res[n, l] : "-"
        print ""
    }
}' "$@"
