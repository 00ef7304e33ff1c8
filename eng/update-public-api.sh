#!/usr/bin/env bash
# Brings every shipped library's PublicAPI.Unshipped.txt in line with its code: adds the symbols
# the PublicApiAnalyzers report as undeclared (RS0016) and drops the ones reported as gone
# (RS0017). Run it after changing public API, then read the diff: it is the API review.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for round in 1 2 3; do
  dotnet build Virtio.sln -p:TreatWarningsAsErrors=false -nologo -clp:NoSummary >"$log" 2>&1 || true
  python3 - "$log" <<'PY'
import re, sys, collections, os
log = open(sys.argv[1], encoding="utf-8", errors="replace").read()
add = collections.defaultdict(set); drop = collections.defaultdict(set)
for m in re.finditer(r"warning (RS001[67]): Symbol '(.+?)' is (?:not part|part) of the declared (?:public )?API.*?\[(.+?\.csproj)\]", log):
    code, sym, proj = m.groups()
    d = os.path.dirname(proj)
    (add if code == "RS0016" else drop)[d].add(sym)
for d in set(add) | set(drop):
    path = os.path.join(d, "PublicAPI.Unshipped.txt")
    lines = [l.rstrip("\n") for l in open(path)] if os.path.exists(path) else ["#nullable enable"]
    body = [l for l in lines[1:] if l and l not in drop[d]]
    body = sorted(set(body) | add[d])
    open(path, "w").write("\n".join(["#nullable enable"] + body) + "\n")
    print(f"{path}: +{len(add[d])} -{len(drop[d])}")
PY
  grep -qE "warning RS001[67]" "$log" || break
done
