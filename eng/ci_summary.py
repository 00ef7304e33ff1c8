#!/usr/bin/env python3
"""The CI summary (.ci/run): counts the TRX reports under a results directory and ends with
`tests: N passed, N failed, N skipped`; exits 1 when anything failed.

    ci_summary.py RESULTS_DIR TEST_EXIT_CODE [--allow-skip REGEX]...
    ci_summary.py --write-result FILE NAME Passed|Failed MESSAGE
    ci_summary.py --self-test

--write-result writes a TRX report of one result (eng/fuzz.sh --trx: each fuzz target counts as
one test).

Every skipped test is printed with its reason. Under CI=true a skip whose reason matches no
--allow-skip pattern (re.search) is counted as failed, not skipped: a CI machine of the project's
kind has what every test needs, so a skip there hides a broken set-up. Without CI=true (a
developer's machine) skips are reported and do not fail.
"""
import glob
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET

NS = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
FAILED_COUNTERS = ("failed", "error", "timeout", "aborted")


def read_reports(root):
    """(files, passed, failed, skipped counted by the reports, failed results, skipped results)."""
    passed = failed = skipped = 0
    failures, skips = [], []
    files = sorted(glob.glob(f"{root}/**/*.trx", recursive=True))
    for f in files:
        trx = ET.parse(f).getroot()
        c = trx.find("t:ResultSummary/t:Counters", NS)
        passed += int(c.get("passed", 0))
        failed += sum(int(c.get(k, 0)) for k in FAILED_COUNTERS)
        skipped += int(c.get("notExecuted", 0))
        for r in trx.iter(f"{{{NS['t']}}}UnitTestResult"):
            if r.get("outcome") == "Failed":
                failures.append(r)
            elif r.get("outcome") == "NotExecuted":
                skips.append(r)
    return files, passed, failed, skipped, failures, skips


def message_of(result):
    """A failure's message."""
    message = result.find("t:Output/t:ErrorInfo/t:Message", NS)
    return (message.text or "").strip() if message is not None else ""


def reason_of(result):
    """A skip's reason: xunit v3's TRX writer puts it in Output/StdOut (a message, if any, counts too)."""
    stdout = result.find("t:Output/t:StdOut", NS)
    return ((stdout.text or "").strip() if stdout is not None else "") or message_of(result) or "(no reason given)"


def read_totals(log):
    """dotnet test's own summary ("total: N" / "failed: N" / "succeeded: N" / "skipped: N"), the last one."""
    totals = {}
    try:
        for line in open(log, errors="replace"):
            parts = line.strip().split(":")
            if len(parts) == 2 and parts[0] in ("total", "failed", "succeeded", "skipped") and parts[1].strip().isdigit():
                totals[parts[0]] = int(parts[1])
    except OSError:
        pass
    return totals


def summarize(root, rc, allowed, ci, out=print):
    """Prints the summary; returns (passed, failed, skipped) as the last line counts them."""
    files, passed, failed, skipped, failures, skips = read_reports(root)
    # The skips first, each with its reason; those CI does not allow are counted as failed.
    not_allowed = 0
    for r in skips:
        reason = reason_of(r)
        name = r.get("testName")
        if not ci or any(re.search(p, reason) for p in allowed):
            out(f"skipped: {name} — {reason}")
        else:
            out(f"SKIP NOT ALLOWED: {name} — {reason}")
            not_allowed += 1
    # The failures last, each with the head of its message, so that a CI log's tail says what broke.
    for r in failures:
        out(f"FAILED: {r.get('testName')}")
        lines = message_of(r).splitlines()
        for line in lines[:15]:
            out(f"    {line[:300]}")
        if len(lines) > 15:
            out(f"    ... {len(lines) - 15} more line(s)")
    totals = read_totals(f"{root}/dotnet-test.log")
    if len(totals) == 4 and totals["total"] > passed + failed + skipped:
        out(f"the TRX reports hold {passed + failed + skipped} of dotnet test's {totals['total']} results "
            "(reports of the same name overwrote each other): counting dotnet test's totals")
        passed, failed, skipped = totals["succeeded"], max(failed, totals["failed"]), totals["skipped"]
    # Skips no report lists (a lost report, or counters that disagree with the results) have no
    # reason to allow them by: under CI they fail.
    unlisted = skipped - len(skips)
    if unlisted > 0:
        if ci:
            out(f"SKIP NOT ALLOWED: {unlisted} skipped test(s) that no TRX report lists, so no reason to allow them by")
            not_allowed += unlisted
        else:
            out(f"{unlisted} skipped test(s) that no TRX report lists (their reasons are unknown)")
    if not_allowed:
        out(f"{not_allowed} skip(s) not allowed under CI=true (the allow-list is in .ci/run): counted as failed")
    failed, skipped = failed + not_allowed, skipped - not_allowed
    if rc != 0 and failed == 0:
        out(f"the test run exited {rc} with no failed test in its reports: counted as one failure")
        failed = 1
    out(f"{len(files)} test report(s)")
    out(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return passed, failed, skipped


def write_result(path, name, outcome, message):
    """Writes a TRX report of the one result `name` (Passed or Failed, with `message`), in the shape read_reports reads."""
    if outcome not in ("Passed", "Failed"):
        raise ValueError(f"outcome {outcome!r}: Passed or Failed")
    t = NS["t"]
    run = ET.Element(f"{{{t}}}TestRun")
    result = ET.SubElement(ET.SubElement(run, f"{{{t}}}Results"), f"{{{t}}}UnitTestResult", testName=name, outcome=outcome)
    ET.SubElement(ET.SubElement(ET.SubElement(result, f"{{{t}}}Output"), f"{{{t}}}ErrorInfo"), f"{{{t}}}Message").text = message
    passed = outcome == "Passed"
    ET.SubElement(ET.SubElement(run, f"{{{t}}}ResultSummary", outcome=outcome), f"{{{t}}}Counters", total="1", executed="1",
                  passed=str(int(passed)), failed=str(int(not passed)), error="0", timeout="0", aborted="0", notExecuted="0")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ET.register_namespace("", t)
    ET.ElementTree(run).write(path, encoding="utf-8", xml_declaration=True)


# The shape of an xunit v3 (4.0.2) TRX report (--report-xunit-trx): a skip is outcome NotExecuted
# with its reason in Output/StdOut; a failure's message is in Output/ErrorInfo/Message.
FIXTURE = """<?xml version="1.0" encoding="utf-8"?>
<TestRun xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">
  <Results>
    <UnitTestResult testName="T.Passes" outcome="Passed" />
    <UnitTestResult testName="T.Skips" outcome="NotExecuted">
      <Output><StdOut>needs /dev/kvm: absent</StdOut></Output>
    </UnitTestResult>
    <UnitTestResult testName="T.Fails" outcome="Failed">
      <Output><ErrorInfo><Message>boom</Message></ErrorInfo></Output>
    </UnitTestResult>
  </Results>
  <ResultSummary outcome="Failed">
    <Counters total="3" executed="2" passed="1" failed="1" error="0" timeout="0" aborted="0" notExecuted="1" />
  </ResultSummary>
</TestRun>
"""


def self_test():
    def run(allowed, ci, rc=1, log=None):
        with tempfile.TemporaryDirectory() as root:
            with open(f"{root}/a.trx", "w") as f:
                f.write(FIXTURE)
            if log:
                with open(f"{root}/dotnet-test.log", "w") as f:
                    f.write(log)
            lines = []
            return summarize(root, rc, allowed, ci, lines.append), lines

    checks = [
        # (what, result, expected counts, a line that must be printed)
        ("developer: a skip is reported, not failed", run([], ci=False), (1, 1, 1), "skipped: T.Skips — needs /dev/kvm: absent"),
        ("CI: a skip not allowed fails", run([], ci=True), (1, 2, 0), "SKIP NOT ALLOWED: T.Skips — needs /dev/kvm: absent"),
        ("CI: an allowed skip stays skipped", run([r"^needs /dev/kvm"], ci=True), (1, 1, 1), "skipped: T.Skips — needs /dev/kvm: absent"),
        ("CI: a pattern that does not match does not allow", run([r"^needs root"], ci=True), (1, 2, 0), "SKIP NOT ALLOWED: T.Skips — needs /dev/kvm: absent"),
        ("CI: skips in a lost report fail", run([r"kvm"], ci=True, log="total: 6\nfailed: 1\nsucceeded: 2\nskipped: 3\n"),
         (2, 3, 1), "SKIP NOT ALLOWED: 2 skipped test(s) that no TRX report lists, so no reason to allow them by"),
        ("developer: skips in a lost report are reported", run([], ci=False, log="total: 6\nfailed: 1\nsucceeded: 2\nskipped: 3\n"),
         (2, 1, 3), "2 skipped test(s) that no TRX report lists (their reasons are unknown)"),
    ]
    # A result written by --write-result is read back as one passed or failed test, its message kept.
    with tempfile.TemporaryDirectory() as root:
        write_result(f"{root}/fuzz/a.trx", "Fuzz.ring", "Passed", "fuzz: target=ring execs=1 crashes=0 hangs=0")
        write_result(f"{root}/fuzz/b.trx", "Fuzz.blk", "Failed", "fuzz: target=blk execs=1 crashes=1 hangs=0 <&>")
        lines = []
        counts = summarize(root, 0, [], True, lines.append)
        checks.append(("--write-result: one result per report", (counts, lines), (1, 1, 0), "    fuzz: target=blk execs=1 crashes=1 hangs=0 <&>"))
    bad = 0
    for what, (counts, lines), expected, line in checks:
        ok = counts == expected and line in lines and lines[-1] == "tests: %d passed, %d failed, %d skipped" % expected
        bad += not ok
        print(f"{'ok' if ok else 'FAILED'}: {what}" + ("" if ok else f": got {counts}, printed {lines}"))
    print(f"self-test: {len(checks) - bad} passed, {bad} failed")
    return 1 if bad else 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if len(argv) == 5 and argv[0] == "--write-result":
        write_result(*argv[1:])
        return 0
    args, allowed = [], []
    it = iter(argv)
    for a in it:
        if a == "--allow-skip":
            allowed.append(next(it))
        else:
            args.append(a)
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ci = os.environ.get("CI", "").lower() == "true"
    _, failed, _ = summarize(args[0], int(args[1]), allowed, ci)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
