# Stub domain, test (g) and ring fairness: guests that corrupt their own xenstore ring get
# their connection closed (error field RINGIDX / PROTO, no further answers until they use
# the reconnection protocol) while dom0 keeps working; a guest that writes flat out does not starve dom0, and when it stops reading its
# replies the server stops taking its requests (back-pressure). The guests are the
# ferrostore kernel in ring-abuse mode (kernel/src/demo/ring_abuse.rs).
# xen-run: --xenstore stub --timeout 300
. /ferrostore/tests/boot/lib.sh

# abuse_guest NAME MODE: starts a ring-abuse guest.
abuse_guest() {
    check "xl create $1 (ring-abuse=$2)" xl create "$(ferrostore_guest "$1" "ring-abuse=$2")"
}

# dom0_ops N: N write/read round trips from dom0; prints how many read back right.
dom0_ops() {
    _ok=0
    _i=0
    while [ $_i -lt "$1" ]; do
        xenstore-write /test/dom0/$_i v$_i && [ "$(xenstore-read /test/dom0/$_i)" = v$_i ] &&
            _ok=$((_ok + 1))
        _i=$((_i + 1))
    done
    echo $_ok
}

stublog=$(guest_log Xenstore)
abuse_guest abuse-index index
abuse_guest abuse-header header
for g in abuse-index abuse-header; do
    if wait_for_marker "$(guest_log $g)" '^ring-abuse: done' 60; then
        pass "$g finished"
    else
        fail "$g finished"
    fi
done
idx=$(tr -d '\r' <"$(guest_log abuse-index)")
hdr=$(tr -d '\r' <"$(guest_log abuse-header)")
expect_match "bad indices: the server set error 2 (RINGIDX)" '^ring-abuse: server set error 2$' "$idx"
expect_match "bad indices: no answer afterwards" '^ring-abuse: no answer after the error$' "$idx"
expect_match "oversized header: the server set error 3 (PROTO)" '^ring-abuse: server set error 3$' "$hdr"
expect_match "oversized header: no answer afterwards" '^ring-abuse: no answer after the error$' "$hdr"
for m in "bad indices:$idx" "oversized header:$hdr"; do
    expect_match "${m%%:*}: reconnection resets the ring" \
        '^ring-abuse: reconnected, ring reset: true$' "${m#*:}"
    expect_match "${m%%:*}: served again after reconnecting" \
        '^ring-abuse: answered after reconnecting$' "${m#*:}"
done
expect_eq "no FAILED marker from the abusing guests" "" "$(printf '%s\n%s\n' "$idx" "$hdr" | grep FAILED)"
expect_match "the stub logged the closed RINGIDX connection" \
    '^\[WARN\] xenstored: dom[0-9]+: ring error 2 \(bad ring indices\), connection closed' \
    "$(tr -d '\r' <"$stublog")"
expect_match "the stub logged the closed PROTO connection" \
    '^\[WARN\] xenstored: dom[0-9]+: ring error 3 \(message too long\), connection closed' \
    "$(tr -d '\r' <"$stublog")"
expect_eq "dom0 still served: 20 write/read round trips" 20 "$(dom0_ops 20)"

abuse_guest abuse-flood flood
flog=$(guest_log abuse-flood)
wait_for_marker "$flog" '^ring-abuse: mode Flood' 60 || true
expect_eq "dom0 served during the flood: 50 write/read round trips" 50 "$(dom0_ops 50)"
if wait_for_marker "$flog" '^ring-abuse: done' 60; then
    pass "abuse-flood finished"
else
    fail "abuse-flood finished"
fi
flood=$(tr -d '\r' <"$flog")
expect_match "the flooding guest was served too" \
    '^ring-abuse: flood: [1-9][0-9]* requests, [1-9][0-9]* reply bytes in 5 s$' "$flood"
taken=$(printf '%s\n' "$flood" | sed -n 's/^ring-abuse: back-pressure: the server stopped after \([0-9]*\) unread replies$/\1/p')
# The server takes requests until the 1 KiB response ring is full (60 replies of 17 bytes)
# and the outstanding quota (20) is reached: 80; reading whole ring chunks may take at most
# one more ring of requests (1024/22 = 46) before the quota check stops it.
expect_range "back-pressure: requests taken while replies stay unread" 80 126 "${taken:-x}"
for g in abuse-index abuse-header abuse-flood; do
    if wait_domain_gone $g 30; then
        pass "$g destroyed after poweroff"
    else
        fail "$g destroyed after poweroff" "$(xl list)"
    fi
done
expect_eq "dom0 still served at the end" 5 "$(dom0_ops 5)"
expect_eq "no guest node left in the store" "" \
    "$(xenstore-ls /local/domain | sed -n 's/^\([0-9]*\) = .*/\1/p' | grep -v -e '^0$' -e "^$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)$")"
# The two bad rings are the only thing the stub warns about.
stub_console_clean '^\[WARN\] xenstored: dom[0-9]+: ring error (2 \(bad ring indices\)|3 \(message too long\)), connection closed$'
finish
