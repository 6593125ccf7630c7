#!/usr/bin/env bash
# What `make test` runs once tools/setup.sh --no-venv has the Debian packages: the Swift build (tests, and the
# two example packages) in the background while the Python reference environment installs and the fixtures are
# written, then the tests, the examples and the fuzz smoke pass. (Measured on a fresh 2-core machine, the overlap
# gained nothing over building afterwards: the frameworks' generators slow down as much under the contention.)
# TEST_CONFIG: the build configuration of the tests (default release: the parity and gradient tests compute whole
# networks, several times faster optimised, which more than pays for the longer compile). SWIFT_TEST_FLAGS: extra
# `swift test` arguments (e.g. --filter).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
config=${TEST_CONFIG:-release}
mkdir -p .cache
log=.cache/swift-build.log
echo "test: building the tests ($config) and the examples in the background (log: $log)" >&2
( swift build -c "$config" --build-tests && tools/run-example.sh --build-only ) > "$log" 2>&1 &
build=$!
status=0
tools/setup-venv.sh && tools/fixtures/generate.sh || status=$?
# Never leave the build running behind a failure: wait for it either way.
wait "$build" || { tail -40 "$log" >&2; echo "test: the build failed (full log: $log)" >&2; exit 1; }
[ "$status" -eq 0 ] || exit "$status"
echo "test: build done" >&2
# shellcheck disable=SC2086
swift test -c "$config" --skip-build ${SWIFT_TEST_FLAGS:-} 2>&1 | tee .cache/swift-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
ZOO_BIN=$(swift build -c "$config" --show-bin-path)/zoo tools/run-example.sh
tools/fuzz.sh --smoke
# The test runner's summary again, as the last line (the example and fuzz steps print after it).
grep -E "Test run with [0-9]+ tests" .cache/swift-test.log | tail -1
