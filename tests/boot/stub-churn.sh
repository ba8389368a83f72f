# Stub domain, test (f): ten guests created and destroyed one after another with ferrostore
# as xenstore. Each is introduced (its ring mapped, port bound) and, once it powers off and
# xl destroys it, found gone by the VIRQ_DOM_EXC scan and released. Afterwards memreport's
# store lines equal their value after the first guest exactly (and it shows the stub's heap),
# the stub's heap use after each release is the same, no node of a dead guest is left and no
# permission entry names a dead domid (so a domain that reuses the id inherits nothing;
# libxl itself avoids reusing recent domids).
# xen-run: --xenstore stub --timeout 360
. /ferrostore/tests/boot/lib.sh

cfg=$(ferrostore_guest churn)
stublog=$(stub_log)
base=
domids=""
i=1
while [ $i -le 10 ]; do
    # Paused first, so its domid can be read before it powers itself off.
    if ! out=$(xl create -p "$cfg" 2>&1); then
        fail "xl create guest $i" "$out"
        break
    fi
    d=$(xl domid churn 2>/dev/null)
    xl unpause churn
    if wait_domain_gone churn 30 &&
        wait_for_marker "$stublog" "\[INFO\] xenstored: dom$d released" 10 >/dev/null; then
        domids="$domids $d"
        # The first guest leaves dom0-owned toolstack nodes for good (libxl's first use):
        # the baseline is taken after it.
        [ $i = 1 ] && base=$(xenstore-control memreport | grep -vE '^(heap|service): ')
    else
        fail "guest $i (dom$d) created, powered off, destroyed and released" "$(xl list)"
    fi
    i=$((i + 1))
done
expect_eq "ten guests created, destroyed and released" 10 "$(echo $domids | wc -w)"
# dom0's ring and the stub's own connection (for its 9pfs log device, which 4.19+ gives it).
expect_match "baseline memreport (after the first guest)" '^connections: 2$' "$base"
# The store's lines must match exactly; the heap line moves with transient allocations, and
# the stub's heap is compared below at the same point of each release.
report=$(xenstore-control memreport)
expect_eq "memreport after the tenth guest equals the baseline" "$base" "$(printf '%s\n' "$report" | grep -vE '^(heap|service): ')"
expect_match "memreport shows the stub's heap" '^heap: [0-9]+ B used, [0-9]+ B free of [0-9]+ B, peak [0-9]+ B, [0-9]+ blocks$' "$report"
expect_match "memreport shows the dispatcher's activity with ten domain scans or more" \
    '^service: [1-9][0-9]* wake-ups, awake [0-9]+ ms; [1-9][0-9]* requests in [1-9][0-9]* ring services, [0-9]+ ms; [0-9]+ watch events; ([1-9][0-9]|[1-9][0-9]{2,}) domain scans \([0-9]+ domains\), [0-9]+ ms; [0-9]+ lost wake-ups; slowest ring service [0-9]+ us$' "$report"
tree=$(xenstore-ls -p / 2>&1)
left=""
for d in $domids; do
    if printf '%s\n' "$tree" | grep -Eq "(^| )$d = |[(, ][nrwb]$d[,)]"; then
        left="$left $d"
    fi
done
expect_eq "no node or permission entry names a dead guest" "" "$left"
heap=$(stub_log_text | sed -n 's/^\[INFO\] xenstored: dom[0-9]* released (heap: \([0-9]*\) B in \([0-9]*\) blocks)$/\1 \2/p')
expect_eq "ten heap reports from the stub" 10 "$(printf '%s\n' "$heap" | grep -c .)"
expect_eq "the stub's heap after the 1st and the 10th release (no leak)" \
    "$(printf '%s\n' "$heap" | sed -n 1p)" "$(printf '%s\n' "$heap" | sed -n 10p)"
stub_console_clean
finish
