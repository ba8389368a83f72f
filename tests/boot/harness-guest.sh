# xen-run: --timeout 300
# Harness self-test: a Linux PV guest (/ferrostore/guest/) boots under xl with the C
# xenstored, runs the command given after "--" on its kernel command line, and powers off.
. /ferrostore/tests/boot/lib.sh

start=$(uptime_ms)
if linux_guest linux-guest 'test -c /dev/xen/evtchn && test -c /dev/xen/gntdev && xenstore-read name'; then
    pass "linux_guest ran its command and is gone ($(($(uptime_ms) - start)) ms)"
else
    fail "linux_guest ran its command and is gone"
fi
expect_eq "guest console: start marker, its own name from xenstore, exit marker" \
    "GUEST-INIT START
linux-guest
GUEST-EXIT 0" "$(grep -E '^(GUEST-|linux-guest)' "$(guest_log linux-guest)" | tr -d '\r')"
if linux_guest failing-guest 'exit 3' >/tmp/failing.out; then
    fail "linux_guest returns 1 when the guest's command fails" "$(cat /tmp/failing.out)"
else
    expect_eq "linux_guest returns 1 when the guest's command fails" \
        "linux_guest: failing-guest's command failed: GUEST-EXIT 3" "$(tr -d '\r' </tmp/failing.out)"
fi
finish
