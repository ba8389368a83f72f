# Issue 4 §5 (e): the demo kernel in xenstore-client mode (xen-config/xsclient.cfg) uses its
# own store ring through the kernel's xenstore client: reads, writes, error names, a value
# larger than the 1024-byte ring, concurrent requests matched by req_id, a transaction retried
# after EAGAIN, watches (events interleaved with replies, a timed-out wait, a wait cancelled
# from another thread, an event written by dom0). Markers: kernel/src/demo/xsclient.rs.
# xen-run: --xenstore stub --timeout 300
. /ferrostore/tests/boot/lib.sh

cfg=/ferrostore/xen-config/xsclient.cfg
name=ferrostore-xsclient
log=$(guest_log $name)

check "xl create xsclient.cfg" xl create $cfg
wait_for_marker "$log" '^xsclient: (waiting for dom0 to write data/from-dom0|FAILED)' 90
expect_match "guest waits on its watch for dom0's write" \
    '^xsclient: waiting for dom0 to write data/from-dom0$' "$(tr -d '\r' <"$log")"
id=$(xl domid $name)
check "dom0 writes the guest's data/from-dom0" \
    xenstore-write /local/domain/$id/data/from-dom0 hello-from-dom0
if wait_for_marker "$log" '^xsclient: (done|FAILED)' 60 && wait_for_marker "$log" '^ferrostore: poweroff' 30; then
    pass "xsclient mode finished and powered off"
else
    fail "xsclient mode finished and powered off"
fi
out=$(grep '^xsclient: ' "$log" | tr -d '\r')
expect_eq "xsclient session, exact (numbers normalised to <n>)" "xsclient: connected to the store ring (port <n>)
xsclient: read domid = $id
xsclient: read name = $name
xsclient: wrote data/hello, read back \"world\"
xsclient: directory data = dir hello
xsclient: rm data/dir, then read -> ENOENT
xsclient: read data/missing -> ENOENT
xsclient: read /local/domain/0/name -> EACCES
xsclient: write /tool/evil -> EACCES
xsclient: 1800-byte value crossed the 1024-byte ring both ways intact
xsclient: 4 threads x 25 write+read pairs, all replies matched (<n> in flight at most)
xsclient: transaction: attempt 1 -> EAGAIN, attempt 2 committed, data/counter = 101
xsclient: aborted transaction left no trace (ENOENT)
xsclient: watch data/watched fired at registration
xsclient: 3 writes, then their events in order: data/watched/a data/watched/b data/watched/c
xsclient: read_watch timed out after <n> ms (deadline 200 ms)
xsclient: read_watch cancelled from another thread; requests ran during and after the wait
xsclient: a waiting thread got the event of another thread's write: data/watched/d
xsclient: waiting for dom0 to write data/from-dom0
xsclient: dom0 wrote data/from-dom0 = \"hello-from-dom0\"
xsclient: unwatch ok, again -> ENOENT
xsclient: stats: <n> requests, <n> watch events, <n> ring-full waits, <n> split replies, <n> stray
xsclient: done" "$(printf '%s\n' "$out" | sed -E 's/\(port [0-9]+\)/(port <n>)/; s/after [0-9]+ ms/after <n> ms/;
    s/\([0-9]+ in flight/(<n> in flight/; s/[0-9]+ (requests|watch events|ring-full waits|split replies|stray)/<n> \1/g')"
expect_match "four requests were in flight together" '^xsclient: 4 threads x 25 write\+read pairs, all replies matched \(4 in flight at most\)$' "$out"
expect_match "the timed-out wait lasted 200..999 ms" '^xsclient: read_watch timed out after [2-9][0-9][0-9] ms' "$out"
# Whether the 1800-byte reply is taken in one pump or several depends on whether the stub
# refills the ring while the guest is still reading (it does when it runs on the other pCPU
# at once), so the split-reply count is not asserted; the value's crossing is, above.
expect_match "stats: the 1800-byte request waited for ring space, no stray reply" \
    '^xsclient: stats: [0-9]+ requests, [0-9]+ watch events, [1-9][0-9]* ring-full waits, [0-9]+ split replies, 0 stray$' "$out"
if wait_domain_gone $name 30; then
    pass "domain gone after poweroff"
else
    fail "domain gone after poweroff" "$(xl list)"
fi
stub_console_clean
finish
