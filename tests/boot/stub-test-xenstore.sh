# Stub domain, test (b): Xen's own xenstore test suite (test-xenstore) passes against the
# ferrostore stub, and the stub is still serving afterwards.
# xen-run: --xenstore stub --timeout 300
. /ferrostore/tests/boot/lib.sh

start=$(uptime_ms)
if out=$(test-xenstore 2>&1); then
    pass "test-xenstore against the stub ($(($(uptime_ms) - start)) ms)"
else
    fail "test-xenstore against the stub" "$out"
fi
expect_eq "no test reported failure" "" "$(printf '%s\n' "$out" | grep -iE 'fail|error')"
# test-xenstore prints one "<name> : <time> ns" line per test case it completed.
expect_eq "all 12 test cases ran, in order" \
    "read 1|read 2000|write 1|write 2000|dir|rm node|rm dir|ta empty|ta empty x|ta rmw|ta rmw x|ta err" \
    "$(printf '%s\n' "$out" | sed -n 's/^\(.*[^ ]\) *: [0-9]* ns$/\1/p' | tr '\n' '|' | sed 's/|$//')"
check "the stub still serves dom0 after the suite" xenstore-write /test/after ok
expect_eq "and reads back" "ok" "$(xenstore-read /test/after)"
stub_console_clean
finish
