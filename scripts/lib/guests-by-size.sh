# scripts/bench-guests --sizes' scenario (run in dom0 by scripts/xen-run, under C xenstored in
# dom0 or the ferrostore stub): ferrostore guests (demo tour, 16 MiB) created one after
# another until 1, 10 and 50 exist (fewer if Xen's free memory does not hold 50), each kept
# after it powers off (on_poweroff = "preserve") so its store entries stay. Per size: the
# mean wall time of one `xl create` while growing to it, the xenstore's CPU per guest added
# (the stub's Time(s) in `xl list`, or xenstored's utime+stime), and the xenstore's memory at
# that size (the stub's heap in use from memreport, or xenstored's VmRSS). Then every guest
# is destroyed, timed. Lines: "BENCH size <n> <create ms> <cpu ms per guest> <bytes>",
# with the stub also "BENCH work <n> <requests> <ring-service ms> <awake ms>" per guest added
# (memreport's service line: what the requests cost inside the stub, by its clock), and
# "BENCH destroy <n> <ms per guest>".
# xen-run: --timeout 900
. /ferrostore/tests/boot/lib.sh

stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
# xs_cpu_ms: CPU time the xenstore has used, in ms.
xs_cpu_ms() {
    if [ -n "$stub" ]; then
        xl list "$stub" | awk 'NR == 2 { printf "%d\n", $6 * 1000 }'
    else
        awk '{ print ($14 + $15) * 10 }' /proc/"$(pidof xenstored)"/stat
    fi
}
# xs_bytes: the xenstore's memory in use, in bytes.
xs_bytes() {
    if [ -n "$stub" ]; then
        xenstore-control memreport | sed -n 's/^heap: \([0-9]*\) B used.*/\1/p'
    else
        awk '/^VmRSS:/ { print $2 * 1024 }' /proc/"$(pidof xenstored)"/status
    fi
}

# stub_work: "<requests> <ring-service ms> <awake ms>" so far (the stub's memreport).
stub_work() {
    xenstore-control memreport |
        sed -n 's/^service: .* awake \([0-9]*\) ms; \([0-9]*\) requests in [0-9]* ring services, \([0-9]*\) ms;.*/\2 \3 \1/p'
}

free_mib=$(xl info | sed -n 's/^free_memory *: *//p')
max=50
[ $((free_mib / 17)) -lt $max ] && max=$((free_mib / 17))
echo "free memory ${free_mib} MiB: up to $max guests"
have=0
for size in 1 10 50; do
    [ "$size" -gt "$max" ] && size=$max
    [ "$size" -le "$have" ] && continue
    cpu0=$(xs_cpu_ms)
    [ -z "$stub" ] || read -r req0 svc0 awake0 <<EOF
$(stub_work)
EOF
    total=0
    while [ "$have" -lt "$size" ]; do
        have=$((have + 1))
        cfg=$(ferrostore_guest "n-$have" demo)
        sed -i 's/^on_poweroff = .*/on_poweroff = "preserve"/' "$cfg"
        t0=$(uptime_ms)
        check "xl create n-$have" xl create "$cfg"
        total=$((total + $(uptime_ms) - t0))
    done
    # Let the newest tours finish before reading the figures.
    wait_domain_state "n-$have" s 60 >/dev/null
    added=$((size - ${prev:-0}))
    prev=$size
    echo "BENCH size $size $((total / added)) $((($(xs_cpu_ms) - cpu0) / added)) $(xs_bytes)"
    if [ -n "$stub" ]; then
        read -r req svc awake <<EOF
$(stub_work)
EOF
        echo "BENCH work $size $(((req - req0) / added)) $(((svc - svc0) / added)) $(((awake - awake0) / added))"
    fi
done
t0=$(uptime_ms)
i=1
while [ "$i" -le "$have" ]; do
    xl destroy "n-$i"
    i=$((i + 1))
done
echo "BENCH destroy $have $((($(uptime_ms) - t0) / have))"
expect_eq "no guest's home is left in the store" "" \
    "$(xenstore-ls /local/domain | grep -E '^[0-9]+ = ' | grep -vE "^(0|${stub:-0}) = ")"
finish
