# Platform boot test: xen-config/hello.cfg runs the demo (banner, start_info, int3, timers,
# heap, memory and thread demos) and powers off cleanly. Markers: docs/boot-path.md. The
# stub image, given the same config, runs no demo and says which image has it.
# xen-run: --xenstore c --timeout 240
. /ferrostore/tests/boot/lib.sh

cfg=/ferrostore/xen-config/hello.cfg
name=ferrostore-hello
log=$(guest_log $name)
crashes_before=$(xl dmesg | grep -ci crash)

start=$(uptime_ms)
check "xl create hello.cfg" xl create $cfg
created=$(uptime_ms)
if wait_for_marker "$log" '^ferrostore [0-9.]+: PV kernel booted' 60; then
    now=$(uptime_ms)
    pass "banner ($((now - start)) ms after xl create started, $((now - created)) ms after it returned)"
else
    fail "banner"
fi
if wait_for_marker "$log" '^ferrostore: poweroff' 120; then
    pass "final poweroff marker ($(($(uptime_ms) - start)) ms after xl create)"
else
    fail "final poweroff marker"
fi
out=$(tr -d '\r' <"$log")

mem=$(sed -n 's/^memory *= *\([0-9]*\).*/\1/p' $cfg)
expect_match "start_info memory equals the config's ($mem MiB)" \
    "^start_info: magic xen-3\.0-x86_64, memory $mem MiB \($((mem * 256)) pages\), flags 0x0, cmdline \"demo\"$" "$out"
expect_match "info log line with the command line" '^\[INFO\] command line "demo"$' "$out"
expect_eq "no debug log lines at the default level" "" "$(printf '%s\n' "$out" | grep '^\[DEBUG\]')"
xen=$(xl info | awk '$1 == "xen_major" { a = $3 } $1 == "xen_minor" { b = $3 } END { print a "\\." b }')
expect_match "Xen version reported (xl info's)" "^xen: version $xen\\." "$out"
wc=$(printf '%s\n' "$out" | sed -n 's/^time: system [0-9]* ns, wallclock \([0-9]*\)\.[0-9]\{9\}$/\1/p')
skew=$(( ${wc:-0} - $(date +%s) ))
if [ -n "$wc" ] && [ $skew -gt -300 ] && [ $skew -lt 300 ]; then
    pass "pvclock wall clock agrees with dom0's clock (skew ${skew} s)"
else
    fail "pvclock wall clock agrees with dom0's clock" "kernel: '${wc}', dom0: $(date +%s)"
fi
expect_match "memory layout" '^layout: text 0x1000-0x[0-9a-f]+ rodata' "$out"
expect_eq "console burst: 48 lines, none lost, in order" "$(seq -s ' ' 1 48)" \
    "$(printf '%s\n' "$out" | sed -n 's/^console: burst line 0*\([0-9]*\) of 48 \.\{72\}$/\1/p' | tr '\n' ' ' | sed 's/ $//')"
expect_match "console burst waited for ring space" \
    '^console: 48 lines in one write, waited for ring space [1-9][0-9]* times, 0 bytes dropped$' "$out"
expect_eq "two int3 trapped" 2 "$(printf '%s\n' "$out" | grep -cE '^trap: int3 at rip 0x[0-9a-f]+, resuming$')"
expect_match "int3 resumed with events enabled (HYPERVISOR_iret return)" \
    '^int3: trapped and resumed, events still enabled$' "$out"
expect_match "int3 resumed with events masked (iretq return)" \
    '^int3: trapped and resumed, events still masked$' "$out"
expect_eq "10 timer events, in order" "1 2 3 4 5 6 7 8 9 10" \
    "$(printf '%s\n' "$out" | sed -n 's/^timer: event \([0-9]*\) at +[0-9]* us$/\1/p' | tr '\n' ' ' | sed 's/ $//')"
expect_match "timer summary" '^timer: 10 events in [0-9]+ ms$' "$out"
expect_match "heap statistics" '^heap: ' "$out"
expect_match "100,000 heap alloc/free, stats back to baseline" \
    '^heap: 100,000 heap alloc/free, stats back to baseline$' "$out"
expect_match "grant self-map round trip" '^grant: self-map round trip ok$' "$out"
expect_match "memory demo ok" '^memory: demo ok$' "$out"
expect_match "100 event-channel ping-pongs" \
    '^ping-pong: 100 round trips over event channel [0-9]+<->[0-9]+$' "$out"
expect_match "every ping-pong event delivered" \
    '^ping-pong: events delivered: 100 to ping, 100 to pong$' "$out"
expect_match "threads demo ok" '^threads: demo ok$' "$out"
expect_match "demo finished" '^demo: done$' "$out"
expect_eq "no panic, fault or warning on the console" "" \
    "$(printf '%s\n' "$out" | grep -E '^(PANIC|FATAL|\[WARN\]|\[ERROR\])|FAILED')"

if wait_domain_gone $name 30; then
    pass "domain gone after poweroff"
else
    fail "domain gone after poweroff" "$(xl list)"
fi
expect_eq "xl dmesg reports no new crash" "$crashes_before" "$(xl dmesg | grep -ci crash)"

# The stub image (ferrostore.gz) has no demo: asked for one, it says so and powers off.
check "xl create hello.cfg with the stub image" \
    xl create $cfg 'name="stub-image"' 'kernel="/ferrostore/ferrostore.gz"'
if wait_for_marker "$(guest_log stub-image)" '^ferrostore: poweroff' 60; then
    expect_match "the stub image refuses the demo and names the demo image" \
        '^ferrostore: this image is the xenstore stub \(it needs --event N from init-xenstore-domain\); the demo and test guests are ferrostore-demo\.gz; powering off$' \
        "$(tr -d '\r' <"$(guest_log stub-image)")"
else
    fail "the stub image powers off when asked for the demo"
fi
expect_eq "the stub image ran no demo" "" "$(tr -d '\r' <"$(guest_log stub-image)" | grep -E '^(start_info|demo):')"
finish
