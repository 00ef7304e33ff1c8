#!/usr/bin/env bash
# The test command (README): builds and runs every test project in the solution.
# Extra arguments go to `dotnet test` (CI passes -c Release --no-build --results-directory DIR).
set -uo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh >/dev/null || exit 1
exec dotnet test --solution Virtio.sln --report-xunit-trx "$@"
