# What a live update of the ferrostore stub costs (scripts/bench-xen; issue 10 §5), run in
# dom0 under scripts/xen-run --xenstore stub. Twice, with the store as booted and with 10,000
# more nodes: a dom0 client writes in a loop (one xenstore-write a round) and stamps every
# reply, while xenstore-control live-update replaces the stub. Prints
#   BENCH lu <nodes> gap <longest gap between two replies, us> period <median gap, us>
#         stub <unavailability the new kernel measured, us> state <state stream bytes>
# (the gap seen by the client includes one round of the loop: process start-up under TCG).
# xen-run: --xenstore stub --timeout 600
. /ferrostore/tests/boot/lib.sh
console=$(guest_log Xenstore)

# us: a microsecond clock (date's %N if it has one, else /proc/uptime's 10 ms steps).
us() {
    t=$(date +%s%N 2>/dev/null)
    case $t in
    *[!0-9]* | '') awk '{ printf "%d\n", $1 * 1000000 }' /proc/uptime ;;
    *) echo $((t / 1000 % 100000000000)) ;;
    esac
}

# measure IMAGE: one update under the write loop; prints the BENCH line.
measure() {
    nodes=$(xenstore-control memreport | awk '/^domain [0-9]+:/ { n += $3 } END { print n }')
    rm -f /tmp/lu-stop
    (
        n=0
        while [ ! -e /tmp/lu-stop ]; do
            n=$((n + 1))
            xenstore-write /lu/tick "$n" && us
        done
    ) >/tmp/lu-ticks &
    loop=$!
    sleep 2
    before=$(grep -c 'the store was unavailable for' "$console")
    if ! out=$(xenstore-control live-update "$1" 2>&1); then
        fail "live update to $1" "$out"
    fi
    _updated() { [ "$(grep -c 'the store was unavailable for' "$console")" -gt "$before" ]; }
    _poll 30 _updated
    sleep 2
    touch /tmp/lu-stop
    wait $loop
    head -n 3 /tmp/lu-ticks; wc -l /tmp/lu-ticks
    gaps=$(awk 'NR > 1 { print $1 - prev } { prev = $1 }' /tmp/lu-ticks | sort -n)
    gap=$(printf '%s\n' "$gaps" | tail -n 1)
    period=$(printf '%s\n' "$gaps" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    stub_us=$(tr -d '\r' <"$console" | sed -n 's/.*the store was unavailable for \([0-9]*\) us.*/\1/p' | tail -n 1)
    state=$(tr -d '\r' <"$console" | sed -n 's/.*switching to the new kernel ([0-9]* B image, \([0-9]*\) B state.*/\1/p' | tail -n 1)
    echo "BENCH lu $nodes gap $gap period $period stub $stub_us state $state"
    if [ -n "$gap" ] && [ -n "$stub_us" ] && [ -n "$state" ]; then
        pass "live update measured with $nodes nodes"
    else
        fail "live update measured with $nodes nodes"
    fi
}

measure /ferrostore/ferrostore-next.gz
i=0
while [ $i -lt 20 ]; do
    pairs=""
    j=0
    while [ $j -lt 500 ]; do
        pairs="$pairs /lu/n$i/k$j v$j"
        j=$((j + 1))
    done
    # shellcheck disable=SC2086
    xenstore-write $pairs || fail "writing nodes"
    i=$((i + 1))
done
measure /ferrostore/ferrostore.gz
finish
