# Stub domain, memory abuse (XSA-326): three guests in xsfill mode (kernel/src/demo/xsfill.rs)
# each try to make the stub hold as much as they can, first in ten open transactions, then in
# their own areas, all at once. Each must be stopped with ENOMEM (its memory quota, or the
# bound on all domains together; with the default 8 MiB or a 4 MiB stub memory runs out
# before the node count); what the guests hold stays within those bounds; the stub keeps
# serving dom0 and does not panic; once the guests are destroyed they hold nothing.
# xen-run: --xenstore stub --timeout 300
. /ferrostore/tests/boot/lib.sh

stublog=$(guest_log Xenstore)
guests="fill1 fill2 fill3"
for g in $guests; do
    check "xl create $g (xsfill)" xl create "$(ferrostore_guest $g xsfill)"
done
domids=""
for g in $guests; do
    domids="$domids $(xl domid $g)"
    if wait_for_marker "$(guest_log $g)" '^xsfill: (holding|FAILED)' 200; then
        pass "$g reached its limits"
    else
        fail "$g reached its limits"
    fi
done
for g in $guests; do
    out=$(tr -d '\r' <"$(guest_log $g)")
    expect_match "$g: ten open transactions were stopped by ENOMEM" \
        '^xsfill: 10 transactions took [0-9]+ values of 2000 bytes, then ENOMEM$' "$out"
    expect_match "$g: writes outside transactions were stopped by ENOMEM" \
        '^xsfill: wrote [0-9]+ values of 2000 bytes, then ENOMEM$' "$out"
    expect_eq "$g: no FAILED marker" "" "$(printf '%s\n' "$out" | grep FAILED)"
done

# What the guests hold: each within the memory quota; together within the bound on all
# domains (half the heap, dom0's nodes included), which the stub's default quotas make
# smaller than three guests' quotas, so the bound, not only the quotas, stopped them.
quota=$(xenstore-control quota 2>&1 | sed -n 's/^memory *: *\([0-9]*\) .*/\1/p')
report=$(xenstore-control memreport 2>&1)
expect_match "memreport answers while the guests hold their data" '^connections: [0-9]+$' "$report"
sum=0
for d in $domids; do
    bytes=$(printf '%s\n' "$report" | sed -n "s/^domain $d: [0-9]* nodes, \([0-9]*\) bytes$/\1/p")
    expect_range "dom$d holds at most its memory quota ($quota B)" 1 "$quota" "${bytes:-0}"
    sum=$((sum + ${bytes:-0}))
done
limit=$(printf '%s\n' "$report" | sed -n 's/^total: [0-9]* bytes charged, limit \([0-9]*\)$/\1/p')
expect_match "memreport shows the bound on all domains" '^[1-9][0-9]*$' "$limit"
expect_range "the guests together hold at most that bound (${limit:-?} B)" 1 "${limit:-0}" "$sum"
expect_range "the guests together hold less than three quotas" 1 $((3 * ${quota:-0} - 1)) "$sum"

check "dom0 still writes" xenstore-write /test/after-fill ok
expect_eq "dom0 still reads" ok "$(xenstore-read /test/after-fill)"
check "the stub is alive" xl list Xenstore

for g in $guests; do
    xl destroy $g
    wait_domain_gone $g 30 || fail "$g destroyed"
done
# The VIRQ_DOM_EXC scan releases them: wait until memreport names none of them.
left=$domids
i=0
while [ -n "$left" ] && [ $i -lt 40 ]; do
    sleep 0.5
    report=$(xenstore-control memreport 2>&1)
    left=""
    for d in $domids; do
        printf '%s\n' "$report" | grep -q "^domain $d: " && left="$left $d"
    done
    i=$((i + 1))
done
expect_eq "the destroyed guests hold nothing" "" "$left"
expect_eq "the stub never panicked" "" "$(tr -d '\r' <"$stublog" | grep -i panic)"
stub_console_clean
finish
