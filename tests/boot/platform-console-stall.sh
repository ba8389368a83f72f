# Platform boot test: the console never hangs the kernel. With xenconsoled stopped nobody reads
# the console ring; the demo fills it, the writer waits console::STALL_NS (5 s) without
# progress, then drops output instead of blocking, and the kernel still powers off. When
# xenconsoled is started again it finds the ring's first 2 KiB (the banner) in the preserved
# domain; the final marker, written after the stall, was dropped.
# xen-run: --xenstore c --timeout 240
. /ferrostore/tests/boot/lib.sh

name=ferrostore-stall
log=$(guest_log $name)

is_shut_down() {
    xl list "$1" 2>/dev/null | awk 'NR == 2 && $5 ~ /s/ { found = 1 } END { exit !found }'
}

check "stop xenconsoled" kill "$(cat /var/run/xen/xenconsoled.pid)"
sleep 1
check "xl create hello.cfg without a console backend" \
    xl create /ferrostore/xen-config/hello.cfg "name=\"$name\"" 'on_poweroff="preserve"'
start=$(uptime_ms)
if _poll 90 is_shut_down $name; then
    pass "kernel powered off although nobody read its console ($(($(uptime_ms) - start)) ms)"
else
    fail "kernel powered off although nobody read its console" "$(xl list)"
fi
check "restart xenconsoled" xenconsoled --pid-file=/var/run/xen/xenconsoled.pid --log=guest \
    --log-dir=/var/log/xen/console
if wait_for_marker "$log" '^ferrostore [0-9.]+: PV kernel booted' 30; then
    pass "banner kept in the ring for the late backend"
else
    fail "banner kept in the ring for the late backend"
fi
sleep 1
expect_eq "output after the stall was dropped (no final marker)" "" \
    "$(tr -d '\r' <"$log" | grep '^ferrostore: poweroff$')"
check "xl destroy $name" xl destroy $name
finish
