# xen-run: --xenstore none
# Harness self-test: with --xenstore none dom0 has the Xen devices but no xenstore daemons.
# Also checks lib.sh's own counting, finish and wait_for_marker (no xenstore needed).
. /ferrostore/tests/boot/lib.sh

expect_match "dom0 is the control domain" '^control_d$' "$(cat /proc/xen/capabilities)"
for dev in evtchn privcmd gntdev gntalloc; do
    check "/dev/xen/$dev exists" test -c /dev/xen/$dev
done
for daemon in xenstored xenconsoled; do
    if pidof $daemon >/dev/null; then
        fail "$daemon is not running" "pid $(pidof $daemon)"
    else
        pass "$daemon is not running"
    fi
done
expect_eq "no xenstored pid file" "" "$(ls /var/run/xen)"

out=$(
    expect_range "in" 1 3 3
    expect_range "below" 1 3 0
    expect_range "not a number" 1 3 x
)
expect_eq "lib: expect_range output" "PASS in (3)
FAIL below
    expected 1..3, got '0'
FAIL not a number
    expected 1..3, got 'x'" "$out"

out=$(
    PASSED=0 FAILED=0
    fail "one" "detail line"
    pass "two"
    finish
)
expect_eq "lib: finish exits 1 after a FAIL" 1 "$?"
expect_eq "lib: fail/pass/finish output" "FAIL one
    detail line
PASS two
RESULT: 1 passed, 1 failed" "$out"
out=$(
    PASSED=0 FAILED=0
    finish
)
expect_eq "lib: finish exits 1 when nothing was checked" 1 "$?"
expect_eq "lib: finish output when nothing was checked" "RESULT: 0 passed, 0 failed
FAIL scenario checked nothing" "$out"
out=$(
    PASSED=0 FAILED=0
    check "true passes" true
    finish
)
expect_eq "lib: finish exits 0 after only PASS" 0 "$?"
expect_eq "lib: check output" "PASS true passes
RESULT: 1 passed, 0 failed" "$out"

rm -f /tmp/marker.log
(
    sleep 1
    echo "marker 42" >>/tmp/marker.log
) &
start=$(uptime_ms)
wait_for_marker /tmp/marker.log '^marker [0-9]+$' 10
expect_eq "lib: wait_for_marker finds a line written 1 s later" 0 "$?"
expect_range "lib: wait_for_marker returns once the line is there, not at its timeout (ms)" \
    900 9000 $(($(uptime_ms) - start))
start=$(uptime_ms)
out=$(wait_for_marker /tmp/marker.log '^absent$' 1)
expect_eq "lib: wait_for_marker times out with 1" 1 "$?"
expect_range "lib: wait_for_marker gives up after its 1 s timeout (ms)" \
    1000 6000 $(($(uptime_ms) - start))
expect_eq "lib: wait_for_marker timeout message" \
    "wait_for_marker: no /^absent$/ in /tmp/marker.log after 1 s; its last lines:
    marker 42" "$out"
finish
