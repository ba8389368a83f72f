# Stub domain, test (c): with ferrostore as xenstore, xl creates a guest and xenconsoled
# finds its console through the stub (the hello demo prints its markers and powers off);
# @releaseDomain reaches xl/xenconsoled so the domain and its nodes go away. The stub logs the
# guest's introduction and death (on 4.19+ in its log file on dom0's disk, not the console).
# xen-run: --xenstore stub --timeout 300
. /ferrostore/tests/boot/lib.sh

name=ferrostore-hello
log=$(guest_log $name)
# Paused first, so its domid can be read before it powers itself off.
check "xl create -p hello.cfg" xl create -p /ferrostore/xen-config/hello.cfg
domid=$(xl domid $name 2>/dev/null)
expect_match "the guest has a domid" '^[1-9][0-9]*$' "$domid"
check "xl unpause $name" xl unpause $name
if wait_for_marker "$log" '^ferrostore [0-9.]+: PV kernel booted' 60; then
    pass "guest banner on its console (xenconsoled via the stub)"
else
    fail "guest banner on its console (xenconsoled via the stub)"
fi
if wait_for_marker "$log" '^demo: done' 120; then
    pass "demo finished on the console"
else
    fail "demo finished on the console"
fi
if wait_for_marker "$log" '^ferrostore: poweroff' 30; then
    pass "guest poweroff marker"
else
    fail "guest poweroff marker"
fi
if wait_domain_gone $name 30; then
    pass "domain gone after poweroff"
else
    fail "domain gone after poweroff" "$(xl list)"
fi
expect_eq "its /local/domain node is gone" "" "$(xenstore-ls /local/domain 2>&1 | grep "^$domid = ")"
stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
if wait_for_marker "$(stub_log)" "\[INFO\] xenstored: dom$domid is gone" 10; then
    pass "the stub saw the domain die (VIRQ_DOM_EXC scan)"
else
    fail "the stub saw the domain die (VIRQ_DOM_EXC scan)"
fi
expect_match "the stub logged the guest's introduction" \
    "\[INFO\] xenstored: dom$domid introduced \(port [0-9]+ -> local [0-9]+\)$" "$(stub_log_text)"
if command -v xen-9pfsd >/dev/null; then
    expect_eq "with its log file open the stub's console keeps info lines off" "" \
        "$(tr -d '\r' <"$(guest_log Xenstore)" | grep "xenstored: dom$domid ")"
fi
expect_match "the stub is still running" "^Xenstore +$stub " "$(xl list)"
stub_console_clean
finish
