# Platform boot test: the console never hangs the kernel. The domain is created paused, then
# xenconsoled is stopped (SIGSTOP) so nobody reads the console ring; the demo fills it, the
# writer waits console::STALL_NS (5 s) without progress, then drops output instead of
# blocking, and the kernel still powers off. When xenconsoled continues it reads the ring's
# first 2 KiB (the banner) from the preserved domain; the final marker, written after the
# stall, was dropped.
# xen-run: --xenstore c --timeout 240
. /ferrostore/tests/boot/lib.sh

name=ferrostore-stall
log=$(guest_log $name)
consoled=$(cat /var/run/xen/xenconsoled.pid)

check "xl create -p hello.cfg (paused)" \
    xl create -p /ferrostore/xen-config/hello.cfg "name=\"$name\"" 'on_poweroff="preserve"'
check "stop xenconsoled (SIGSTOP)" kill -STOP "$consoled"
check "xl unpause $name" xl unpause $name
start=$(uptime_ms)
if wait_domain_state $name s 90; then
    pass "kernel powered off although nobody read its console ($(($(uptime_ms) - start)) ms)"
else
    fail "kernel powered off although nobody read its console"
fi
check "let xenconsoled continue (SIGCONT)" kill -CONT "$consoled"
if wait_for_marker "$log" '^console: burst line 01 of 48 ' 30; then
    pass "ring kept the first 2 KiB of output for the late reader"
else
    fail "ring kept the first 2 KiB of output for the late reader"
fi
out=$(tr -d '\r' <"$log")
expect_match "banner kept" '^ferrostore [0-9.]+: PV kernel booted$' "$out"
expect_eq "output after the stall was dropped (no final marker)" "" \
    "$(printf '%s\n' "$out" | grep '^ferrostore: poweroff$')"
check "xl destroy $name" xl destroy $name
finish
