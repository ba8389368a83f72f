# Issue 10 §4: `xenstore-control live-update` replaces the running ferrostore stub in place,
# ten times, while a Linux guest, two ferrostore client guests (`lu-client`, each with a
# transaction held open across every update and a watch) and dom0 (a write+read loop and a
# xenstore-watch) use the store. Updates alternate between the second build
# (ferrostore-next.gz, version <v>+update-test) and the first. Checked: same domid, the new
# version on the stub's console after each update, every request answered (the loops would
# stop), every watch event delivered exactly once, the transactions committed, memreport's
# per-domain node counts and connections, every domain's watches, the open transactions and
# the quotas the same after each update as before it; a
# truncated image, a non-ELF and an oversized one refused with the stub still serving; then
# `xl create` and `xl destroy` of a guest.
# xen-run: --xenstore stub --timeout 600
. /ferrostore/tests/boot/lib.sh

stub=$(xenstore-read /tool/xenstored/domid)
console=$(guest_log Xenstore)
first=/ferrostore/ferrostore.gz
next=/ferrostore/ferrostore-next.gz
version=$(tr -d '\r' <"$console" | sed -n 's/^ferrostore \([^ ]*\): PV kernel booted$/\1/p' | head -n 1)
booted() {
    tr -d '\r' <"$console" | grep -c "^ferrostore $1: PV kernel booted$"
}

# --- images the stub must refuse, with nothing changed ---
refused() {
    out=$(xenstore-control live-update "$2" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -Eq -- "$3"; then
        pass "$1 refused: $(printf '%s' "$out" | tr '\n' ' ')"
    else
        fail "$1 refused" "rc=$rc" "$out"
    fi
    expect_eq "the stub still serves after the $1" "$stub" "$(xenstore-read /tool/xenstored/domid)"
}
gunzip -c $next | head -c 100000 >/tmp/truncated
refused "truncated image" /tmp/truncated "segment lies outside the file|not complete|failed"
refused "non-ELF file" /ferrostore/xen-config/hello.cfg "Not a Xen PV x86_64 kernel: no ELF header"
dd if=/dev/zero of=/tmp/oversized bs=1M count=4 2>/dev/null
refused "oversized image" /tmp/oversized "Kernel of 4194304 bytes refused: at most [0-9]+ bytes"
expect_eq "no update happened" 1 "$(booted "$version")"

# --- the workloads ---
for g in luc1 luc2; do
    check "xl create $g (lu-client)" xl create "$(ferrostore_guest $g lu-client)"
done
mkdir -p /tmp/lu-extra
cp /ferrostore/tests/boot/guest/lu-loop.sh /tmp/lu-extra/guest.sh
(cd /tmp/lu-extra && echo guest.sh | cpio -o -H newc 2>/dev/null | gzip) >/tmp/lu-extra.gz
cat /ferrostore/guest/guest-initrd.gz /tmp/lu-extra.gz >/tmp/lu-linux-initrd.gz
sed -e 's/^name = .*/name = "lu-linux"/' -e 's|^ramdisk = .*|ramdisk = "/tmp/lu-linux-initrd.gz"|' \
    -e 's/^on_poweroff = .*/on_poweroff = "destroy"/' \
    /ferrostore/xen-config/linux-guest.cfg >/tmp/lu-linux.cfg
check "xl create lu-linux (write+read loop)" xl create /tmp/lu-linux.cfg
ids=""
for g in luc1 luc2 lu-linux; do
    ids="$ids $(xl domid $g)"
done
for g in luc1 luc2; do
    if wait_for_marker "$(guest_log $g)" '^lu-client: transaction open' 60 >/dev/null; then
        pass "$g holds a transaction and a watch"
    else
        fail "$g holds a transaction and a watch" "$(tail -n 5 "$(guest_log $g)")"
    fi
done
lid=$(xl domid lu-linux)
_linux_looping() { xenstore-read /local/domain/$lid/data/lu/n >/dev/null 2>&1; }
if _poll 90 _linux_looping; then
    pass "lu-linux's loop is running"
else
    fail "lu-linux's loop is running" "$(tail -n 5 "$(guest_log lu-linux)")"
fi
xenstore-write /lu/w start
xenstore-watch /lu/w >/tmp/lu.watch 2>&1 &
watch_pid=$!
wait_for_marker /tmp/lu.watch '^/lu/w$' 10 >/dev/null
rm -f /tmp/lu-stop /tmp/lu-dom0.err
(
    n=0
    while [ ! -e /tmp/lu-stop ]; do
        n=$((n + 1))
        xenstore-write /lu/w "$n" || echo "write $n" >>/tmp/lu-dom0.err
        [ "$(xenstore-read /lu/w)" = "$n" ] || echo "read $n" >>/tmp/lu-dom0.err
    done
    echo "$n" >/tmp/lu-dom0.count
) &

# --- ten updates ---
# What must not change across an update while the workloads run: memreport's node counts
# and connections, every domain's watches, the lu-clients' open transactions (the Linux
# guest's xenstore tools open and close theirs), and the quotas.
figures() {
    xenstore-control memreport | grep -E '^(domain [0-9]+:|connections:)' | sed 's/, [0-9]* bytes//'
    for id in 0 $ids; do
        printf 'dom%s %s\n' "$id" "$(xenstore-control quota "$id" | grep '^watches')"
    done
    for g in luc1 luc2; do
        printf '%s %s\n' "$g" "$(xenstore-control quota "$(xl domid $g)" | grep '^transactions')"
    done
    xenstore-control quota
}
worst=0
k=1
while [ $k -le 10 ]; do
    if [ $((k % 2)) = 1 ]; then img=$next want="$version+update-test"; else img=$first want=$version; fi
    count=$(booted "$want")
    before=$(figures)
    t0=$(uptime_ms)
    out=$(xenstore-control live-update "$img" 2>&1)
    rc=$?
    dt=$(($(uptime_ms) - t0))
    [ $dt -gt $worst ] && worst=$dt
    after=$(figures)
    if [ $rc = 0 ] && [ "$(booted "$want")" = $((count + 1)) ] &&
        [ "$(xenstore-read /tool/xenstored/domid)" = "$stub" ] && [ "$before" = "$after" ]; then
        pass "update $k: $want running as dom$stub, nodes, connections, watches, transactions and quotas unchanged ($dt ms)"
    else
        fail "update $k to $want" "rc=$rc: $out" "domid $(xenstore-read /tool/xenstored/domid)" \
            "before: $before" "after: $after" "$(tail -n 5 "$console")"
    fi
    k=$((k + 1))
done
echo "live updates: the slowest xenstore-control live-update took $worst ms"

# --- the workloads finish ---
touch /tmp/lu-stop
for id in $ids; do
    xenstore-write /local/domain/$id/data/lu/stop 1
done
for g in luc1 luc2; do
    if wait_for_marker "$(guest_log $g)" '^lu-client: (done|FAILED)' 60 >/dev/null &&
        grep -q '^lu-client: done' "$(guest_log $g)"; then
        pass "$g: every request answered, every event once, its transaction committed"
    else
        fail "$g's workload" "$(tr -d '\r' <"$(guest_log $g)" | grep '^lu-client' | tail -n 5)"
    fi
    expect_match "$g's transaction committed after the updates" \
        '^lu-client: the transaction opened before the updates committed: data/lutx/value = "committed"' \
        "$(tr -d '\r' <"$(guest_log $g)")"
done
if wait_for_marker "$(guest_log lu-linux)" '^GUEST-EXIT ' 60 >/dev/null &&
    grep -q '^GUEST-EXIT 0' "$(guest_log lu-linux)"; then
    pass "lu-linux: $(tr -d '\r' <"$(guest_log lu-linux)" | grep '^GUEST lu-loop')"
else
    fail "lu-linux's loop" "$(tr -d '\r' <"$(guest_log lu-linux)" | grep '^GUEST' | tail -n 3)"
fi
_dom0_done() { [ -e /tmp/lu-dom0.count ]; }
_poll 30 _dom0_done
writes=$(cat /tmp/lu-dom0.count 2>/dev/null)
expect_eq "dom0's write+read loop: every request answered" "" "$(cat /tmp/lu-dom0.err 2>/dev/null)"
sleep 1
kill $watch_pid 2>/dev/null
# The initial event, the "start" write's... (the watch was set after it), then one per write.
expect_eq "dom0's watch: one event per write, each once ($writes writes)" "$((writes + 1))" "$(grep -c '^/lu/w$' /tmp/lu.watch)"
for g in luc1 luc2 lu-linux; do
    wait_domain_gone $g 30 >/dev/null || xl destroy $g 2>/dev/null
done

# --- the toolstack still works ---
cfg=$(ferrostore_guest lu-after)
if out=$(xl create -p "$cfg" 2>&1); then
    d=$(xl domid lu-after)
    check "xl destroy of a guest created after the updates" xl destroy lu-after
    if wait_for_marker "$(stub_log)" "\[INFO\] xenstored: dom$d released" 20 >/dev/null; then
        pass "the updated stub released it"
    else
        fail "the updated stub released it"
    fi
else
    fail "xl create after the updates" "$out"
fi
stub_console_clean
finish
