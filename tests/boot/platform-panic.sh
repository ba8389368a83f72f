# Platform boot test: the failure paths. xen-config/panic.cfg (`panic` option) must print the
# panic message with its location and leave a crashed domain (on_crash = "preserve"); the same
# config with `cmdline = "fault loglevel=debug"` must show debug log lines, then report a page
# fault on page 0 (vector, error code, rip, cr2, registers, stack dump) and crash the domain
# the same way.
# xen-run: --xenstore c --timeout 240
. /ferrostore/tests/boot/lib.sh

cfg=/ferrostore/xen-config/panic.cfg

check "xl create panic.cfg" xl create $cfg
log=$(guest_log ferrostore-panic)
if wait_for_marker "$log" '^PANIC: ' 60; then
    pass "panic message printed"
else
    fail "panic message printed"
fi
expect_match "panic message and location" \
    "^PANIC: deliberate panic requested by the 'panic' command-line option at kernel/src/boot\.rs:[0-9]+:[0-9]+\$" \
    "$(tr -d '\r' <"$log")"
if wait_domain_state ferrostore-panic c 30; then
    pass "panicked domain is crashed and preserved"
else
    fail "panicked domain is crashed and preserved"
fi
check "xl destroy ferrostore-panic" xl destroy ferrostore-panic

check "xl create panic.cfg with cmdline fault" \
    xl create $cfg 'name="ferrostore-fault"' 'cmdline="fault loglevel=debug"'
log=$(guest_log ferrostore-fault)
if wait_for_marker "$log" '^  stack at ' 60; then
    pass "fault report printed"
else
    fail "fault report printed"
fi
out=$(tr -d '\r' <"$log")
expect_match "debug log line shown with loglevel=debug" \
    '^\[DEBUG\] start_info at 0x[0-9a-f]+, shared_info mapped at 0x[0-9a-f]+$' "$out"
expect_match "fault announced" '^fault: reading unmapped page 0$' "$out"
expect_match "page fault: vector, error code, rip, cr2" \
    '^FATAL trap: vector 14 \(page fault\) error code 0x[0-9a-f]+ rip 0x[0-9a-f]+ cr2 0x0$' "$out"
expect_match "register dump" '^  rsi 0x[0-9a-f]{16} rdi 0x[0-9a-f]{16} rbp 0x[0-9a-f]{16} rsp 0x[0-9a-f]{16}$' "$out"
expect_eq "stack dump: 4 rows of 4 words" 4 \
    "$(printf '%s\n' "$out" | grep -cE '^  0x[0-9a-f]{16}: ([0-9a-f]{16} ){3}[0-9a-f]{16}$')"
if wait_domain_state ferrostore-fault c 30; then
    pass "faulted domain is crashed and preserved"
else
    fail "faulted domain is crashed and preserved"
fi
check "xl destroy ferrostore-fault" xl destroy ferrostore-fault
finish
