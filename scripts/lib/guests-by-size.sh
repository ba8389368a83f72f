# scripts/bench-guests --sizes' scenario (run in dom0 by scripts/xen-run, under C xenstored in
# dom0 or the ferrostore stub): ferrostore guests (demo tour, 16 MiB) created one after
# another until 1, 10, 50 and 100 exist (fewer if Xen's free memory does not hold 100), each
# kept after it powers off (on_poweroff = "preserve") so its store entries stay. Per size: the
# mean wall time of one `xl create` while growing to it, the xenstore's CPU per guest added
# (the stub's Time(s) in `xl list`, or xenstored's utime+stime), and the xenstore's memory at
# that size (the stub's heap in use from memreport, or xenstored's VmRSS). Then every guest
# is destroyed, timed. Lines: "BENCH size <n> <create ms> <cpu ms per guest> <bytes>",
# with the stub also "BENCH work <n> <requests> <ring-service ms> <awake ms> <watch events>"
# per guest added (memreport's service line: what the requests cost inside the stub, by its
# clock), "BENCH floor <n> <µs of CPU per request>" (the xenstore's CPU for the 2,001 round
# trips of one `xenstore-ls` of a fixed directory of 1,000 nodes, taken at each size: what
# one request costs whatever the toolstack asks; the stub adds "<requests counted> <µs
# servicing rings> <µs awake>" per request), and "BENCH destroy <n> <ms per guest>".
# xen-run: --timeout 1500 --memory 4096
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

# stub_work: "<requests> <ring-service ms> <awake ms> <watch events>" so far (the stub's
# memreport).
stub_work() {
    xenstore-control memreport |
        sed -n 's/^service: .* awake \([0-9]*\) ms; \([0-9]*\) requests in [0-9]* ring services, \([0-9]*\) ms; \([0-9]*\) watch events;.*/\2 \3 \1 \4/p'
}

# The floor's fixed work: `xenstore-ls /bench-floor` sends one directory, then a read and a
# directory per node, one after another.
floor_nodes=1000
floor_requests=$((2 * floor_nodes + 1))
# floor_us: the xenstore's CPU per request in µs over that work; for the stub also the
# requests it counted meanwhile and its µs servicing rings and awake per request (its clock).
floor_us() {
    _c0=$(xs_cpu_ms)
    [ -z "$stub" ] || read -r _r0 _s0 _a0 _ <<EOF
$(stub_work)
EOF
    xenstore-ls /bench-floor >/dev/null
    _us=$((($(xs_cpu_ms) - _c0) * 1000 / floor_requests))
    if [ -n "$stub" ]; then
        read -r _r1 _s1 _a1 _ <<EOF
$(stub_work)
EOF
        echo "$_us $((_r1 - _r0)) $(((_s1 - _s0) * 1000 / floor_requests)) $(((_a1 - _a0) * 1000 / floor_requests))"
    else
        echo "$_us"
    fi
}
batch=0
while [ "$batch" -lt "$floor_nodes" ]; do
    # shellcheck disable=SC2046 # one argument per word: path value path value ...
    check "nodes $batch-$((batch + 99)) for the floor" xenstore-write \
        $(awk -v b="$batch" 'BEGIN { for (i = b; i < b + 100; i++) printf "/bench-floor/n%d Domain-%d ", i, i }')
    batch=$((batch + 100))
done

free_mib=$(xl info | sed -n 's/^free_memory *: *//p')
max=100
[ $((free_mib / 17)) -lt $max ] && max=$((free_mib / 17))
echo "free memory ${free_mib} MiB: up to $max guests"
have=0
for size in 1 10 50 100; do
    [ "$size" -gt "$max" ] && size=$max
    [ "$size" -le "$have" ] && continue
    cpu0=$(xs_cpu_ms)
    [ -z "$stub" ] || read -r req0 svc0 awake0 ev0 <<EOF
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
        read -r req svc awake ev <<EOF
$(stub_work)
EOF
        echo "BENCH work $size $(((req - req0) / added)) $(((svc - svc0) / added)) $(((awake - awake0) / added)) $(((ev - ev0) / added))"
    fi
    echo "BENCH floor $size $(floor_us)"
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
