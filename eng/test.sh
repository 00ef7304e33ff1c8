#!/usr/bin/env bash
# The test command (README): builds and runs every test project in the solution, with line and
# branch coverage of src/ (coverlet.MTP, docs/testing.md). Extra arguments go to `dotnet test`
# (CI passes -c Release --no-build --results-directory DIR). Each test project writes
# <Project>.coverage.cobertura.<time>.xml into the results directory (TestResults/ by default);
# `python3 eng/coverage.py DIR` merges them into a per-package report.
# COVERAGE=0 runs the tests without instrumentation (faster; no coverage files).
set -uo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh >/dev/null || exit 1
coverage=()
if [ "${COVERAGE:-1}" != 0 ]; then
  # The five device-side packages only: tests, Virtio.Testing (the guest-side driver package), samples and the source-generated files
  # under obj/ (LoggerMessage) are not measured. The file prefix is set per project in
  # Directory.Build.targets (--coverlet-file-prefix).
  coverage=(--coverlet --coverlet-output-format cobertura --coverlet-exclude-by-file '**/obj/**')
  for package in Core Blk Net Kvm VhostUser; do coverage+=(--coverlet-include "[Virtio.$package]*"); done
fi
exec dotnet test --solution Virtio.sln --report-xunit-trx "${coverage[@]}" "$@"
