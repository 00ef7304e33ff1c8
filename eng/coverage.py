#!/usr/bin/env python3
"""The coverage report (.ci/run, docs/testing.md): merges the Cobertura files that eng/test.sh's
coverlet.MTP run wrote into RESULTS_DIR (one per test project) with ReportGenerator (the local
dotnet tool in .config/dotnet-tools.json), writes RESULTS_DIR/coverage/ (Cobertura.xml, the merged
report; Summary.txt, the readable summary; index.html, the line-by-line report), prints a table per
package and one line

    coverage: line L%, branch B% (Core x%, Blk y%, Net z%, Kvm k%, VhostUser v%)

(the package figures are line coverage; the table has their branch coverage too), and checks each
package against its floor.

    coverage.py RESULTS_DIR [--floor PACKAGE=LINE/BRANCH]... [--trx FILE]
    coverage.py --self-test

PACKAGE is the name without `Virtio.` (Core, Blk, ...). A package below its line or branch floor,
a test project that wrote no Cobertura file, or a failed merge exits 1 with the reason. --trx
writes the outcome as a TRX report of one result, Coverage.floors (eng/ci_summary.py counts it
with the tests, as it counts each fuzz target).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_summary import write_result  # noqa: E402

PACKAGES = ("Core", "Blk", "Net", "Kvm", "VhostUser")
TOOL = "dotnet-reportgenerator-globaltool"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def covered_projects(repo=REPO):
    """The test projects that reference coverlet.MTP: each must write a Cobertura file."""
    names = []
    for csproj in sorted(glob.glob(f"{repo}/tests/*/*.csproj")):
        if 'Include="coverlet.MTP"' in open(csproj).read():
            names.append(os.path.splitext(os.path.basename(csproj))[0])
    return names


def find_reports(root):
    """{project: [cobertura files]} for the files coverlet.MTP wrote (<Project>.coverage.cobertura.<time>.xml)."""
    found = {}
    for f in sorted(glob.glob(f"{root}/**/*.coverage.cobertura.*.xml", recursive=True)):
        project = os.path.basename(f).split(".coverage.cobertura.")[0]
        found.setdefault(project, []).append(f)
    return found


def merge(reports, target):
    """Runs ReportGenerator on the reports; returns None, or the reason it failed (naming the tool)."""
    restore = subprocess.run(["dotnet", "tool", "restore"], cwd=REPO, capture_output=True, text=True)
    if restore.returncode != 0:
        return (f"`dotnet tool restore` failed, so {TOOL} (the version in .config/dotnet-tools.json) is not "
                f"installed:\n{(restore.stdout + restore.stderr).strip()[-2000:]}")
    shutil.rmtree(target, ignore_errors=True)
    run = subprocess.run(["dotnet", "tool", "run", "reportgenerator", "-reports:" + ";".join(reports),
                          f"-targetdir:{target}", "-reporttypes:Cobertura;TextSummary;Html", "-verbosity:Warning"],
                         cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0 or not os.path.exists(f"{target}/Cobertura.xml"):
        return f"{TOOL} exited {run.returncode} without {target}/Cobertura.xml:\n{(run.stdout + run.stderr).strip()[-2000:]}"
    return None


def figures(cobertura):
    """{package short name: (lines covered, lines, branches covered, branches)} from a Cobertura file.

    Counts each (file, line) once (a line that two classes list, such as a partial type's, keeps
    its best figures); a line's branches come from its condition-coverage "P% (covered/total)"."""
    result = {}
    for package in ET.parse(cobertura).getroot().iter("package"):
        name = package.get("name", "")
        short = name[len("Virtio."):] if name.startswith("Virtio.") else name
        lines = {}
        for cls in package.iter("class"):
            for line in cls.findall("lines/line"):
                key = (cls.get("filename"), line.get("number"))
                hit = int(line.get("hits", "0")) > 0
                covered = total = 0
                m = re.search(r"\((\d+)/(\d+)\)", line.get("condition-coverage", ""))
                if line.get("branch", "").lower() == "true" and m:
                    covered, total = int(m.group(1)), int(m.group(2))
                old = lines.get(key, (False, 0, 0))
                lines[key] = (old[0] or hit, max(old[1], covered), max(old[2], total))
        result[short] = (sum(1 for h, _, _ in lines.values() if h), len(lines),
                         sum(c for _, c, _ in lines.values()), sum(t for _, _, t in lines.values()))
    return result


def pct(covered, total):
    return 100.0 * covered / total if total else 0.0


def check(figs, floors, out=print):
    """Prints the table and the coverage line; returns the floor failures (one message each)."""
    out(f"{'package':<18}{'line':>22}{'branch':>22}{'floor (line/branch)':>22}")
    for short in PACKAGES:
        lc, lt, bc, bt = figs.get(short, (0, 0, 0, 0))
        floor = floors.get(short)
        out(f"{'Virtio.' + short:<18}{f'{pct(lc, lt):.1f}% ({lc}/{lt})':>22}{f'{pct(bc, bt):.1f}% ({bc}/{bt})':>22}"
            f"{(f'{floor[0]:g}% / {floor[1]:g}%' if floor else '-'):>22}")
    measured = [figs.get(s, (0, 0, 0, 0)) for s in PACKAGES]
    lc, lt, bc, bt = (sum(f[i] for f in measured) for i in range(4))
    per = ", ".join(f"{s} {pct(*figs.get(s, (0, 0, 0, 0))[:2]):.1f}%" for s in PACKAGES)
    line = f"coverage: line {pct(lc, lt):.1f}%, branch {pct(bc, bt):.1f}% ({per})"
    failures = []
    for short, (line_floor, branch_floor) in floors.items():
        flc, flt, fbc, fbt = figs.get(short, (0, 0, 0, 0))
        for kind, value, floor in (("line", pct(flc, flt), line_floor), ("branch", pct(fbc, fbt), branch_floor)):
            if round(value, 1) < floor:
                failures.append(f"coverage below its floor: Virtio.{short} {kind} coverage {value:.1f}% < floor {floor:g}% "
                                "(the floors are the table coverage_floors in .ci/run)")
    for f in failures:
        out(f)
    out(line)
    return failures, line


def run(root, floors, trx, out=print):
    failures, line = [], "coverage: not measured"
    reports = find_reports(root)
    missing = [p for p in covered_projects() if p not in reports]
    if missing:
        failures.append(f"no Cobertura file under {root} from {', '.join(missing)} (did the project's tests run, "
                        "with coverage? eng/test.sh collects it unless COVERAGE=0)")
    files = [f for fs in reports.values() for f in fs]
    if files:
        target = f"{root}/coverage"
        reason = merge(files, target)
        if reason:
            failures.append(f"coverage: the merge failed: {reason}")
        else:
            fl, line = check(figures(f"{target}/Cobertura.xml"), floors, out)
            failures += fl
            out(f"coverage report: {target}/Summary.txt, {target}/index.html, {target}/Cobertura.xml "
                f"(merged from {len(files)} file(s))")
    for f in failures:
        if not f.startswith("coverage below"):
            out(f)
    if trx:
        write_result(trx, "Coverage.floors", "Failed" if failures else "Passed", "\n".join(failures + [line]))
    return 1 if failures else 0


FIXTURE = """<?xml version="1.0" encoding="utf-8"?>
<coverage line-rate="0.5" branch-rate="0.5" version="1.9">
  <packages>
    <package name="Virtio.Core">
      <classes>
        <class name="A" filename="src/Virtio.Core/A.cs">
          <methods><method name="M"><lines><line number="1" hits="9" branch="False" /></lines></method></methods>
          <lines>
            <line number="1" hits="9" branch="False" />
            <line number="2" hits="0" branch="False" />
            <line number="3" hits="4" branch="True" condition-coverage="50% (1/2)" />
          </lines>
        </class>
        <class name="A/Nested" filename="src/Virtio.Core/A.cs">
          <lines>
            <line number="2" hits="1" branch="False" />
            <line number="4" hits="0" branch="True" condition-coverage="0% (0/2)" />
          </lines>
        </class>
      </classes>
    </package>
    <package name="Virtio.Blk">
      <classes>
        <class name="B" filename="src/Virtio.Blk/B.cs">
          <lines><line number="1" hits="1" branch="True" condition-coverage="100% (4/4)" /></lines>
        </class>
      </classes>
    </package>
  </packages>
</coverage>
"""


def self_test():
    bad = 0

    def expect(what, ok, detail=""):
        nonlocal bad
        bad += not ok
        print(f"{'ok' if ok else 'FAILED'}: {what}" + ("" if ok else f": {detail}"))

    with tempfile.TemporaryDirectory() as root:
        with open(f"{root}/Cobertura.xml", "w") as f:
            f.write(FIXTURE)
        figs = figures(f"{root}/Cobertura.xml")
        # Core: lines 1..4, 1-3 hit (2 through the nested class), branches 1/2 + 0/2; Blk: 1/1 lines, 4/4 branches.
        expect("figures: each (file, line) once, methods' lines not counted twice",
               figs == {"Core": (3, 4, 1, 4), "Blk": (1, 1, 4, 4)}, figs)
        lines = []
        failures, line = check(figs, {"Core": (70, 20), "Blk": (100, 100)}, lines.append)
        expect("floors met: no failure", failures == [], failures)
        expect("the coverage line", line == "coverage: line 80.0%, branch 62.5% (Core 75.0%, Blk 100.0%, Net 0.0%, "
               "Kvm 0.0%, VhostUser 0.0%)" and lines[-1] == line, line)
        failures, _ = check(figs, {"Core": (76, 20), "Net": (1, 0)}, lines.append)
        expect("a floor above the figure fails, naming the package, its figure and its floor",
               failures == ["coverage below its floor: Virtio.Core line coverage 75.0% < floor 76% (the floors are the "
                            "table coverage_floors in .ci/run)",
                            "coverage below its floor: Virtio.Net line coverage 0.0% < floor 1% (the floors are the "
                            "table coverage_floors in .ci/run)"], failures)
        failures, _ = check(figs, {"Core": (75, 25)}, lines.append)
        expect("a figure equal to its floor passes", failures == [], failures)
        for name in ("Virtio.Core.Tests.coverage.cobertura.031226202506560.xml", "Virtio.Core.Tests.coverage.cobertura.1.xml",
                     "Virtio.Vmm.Tests.coverage.cobertura.2.xml"):
            open(f"{root}/{name}", "w").close()
        found = {k: len(v) for k, v in find_reports(root).items()}
        expect("reports found by project", found == {"Virtio.Core.Tests": 2, "Virtio.Vmm.Tests": 1}, found)
    expect("every test project with coverlet.MTP is expected", "Virtio.Core.Tests" in covered_projects(), covered_projects())
    print(f"coverage self-test: {'0 failed' if not bad else f'{bad} failed'}")
    return 1 if bad else 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    args, floors, trx = [], {}, None
    it = iter(argv)
    for a in it:
        if a == "--floor":
            m = re.fullmatch(r"(\w+)=([\d.]+)/([\d.]+)", next(it, ""))
            if not m or m.group(1) not in PACKAGES:
                print(f"--floor PACKAGE=LINE/BRANCH with PACKAGE one of {', '.join(PACKAGES)}", file=sys.stderr)
                return 2
            floors[m.group(1)] = (float(m.group(2)), float(m.group(3)))
        elif a == "--trx":
            trx = next(it, None)
        else:
            args.append(a)
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return run(os.path.abspath(args[0]), floors, trx)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
