# Stub domain, test (f): ten guests created and destroyed one after another with ferrostore
# as xenstore. Each is introduced (its ring mapped, port bound) and, once it powers off and
# xl destroys it, found gone by the VIRQ_DOM_EXC scan and released. Afterwards memreport is
# back to its baseline exactly, no node of a dead guest is left and no permission entry
# names a dead domid (so a domain that reuses the id inherits nothing).
# xen-run: --xenstore stub --timeout 360
. /ferrostore/tests/boot/lib.sh

cat >/tmp/churn.cfg <<CFG
name = "churn"
type = "pv"
kernel = "/ferrostore/ferrostore.gz"
memory = 16
on_poweroff = "destroy"
on_crash = "preserve"
CFG
stublog=$(guest_log Xenstore)
base=$(xenstore-control memreport)
expect_match "baseline memreport" '^connections: 1$' "$base"
domids=""
i=1
while [ $i -le 10 ]; do
    if ! out=$(xl create /tmp/churn.cfg 2>&1); then
        fail "xl create guest $i" "$out"
        break
    fi
    d=$(xl domid churn 2>/dev/null)
    if wait_domain_gone churn 30 &&
        wait_for_marker "$stublog" "^\[INFO\] xenstored: dom$d released" 10 >/dev/null; then
        domids="$domids $d"
    else
        fail "guest $i (dom$d) created, powered off, destroyed and released" "$(xl list)"
    fi
    i=$((i + 1))
done
expect_eq "ten guests created, destroyed and released" 10 "$(echo $domids | wc -w)"
expect_eq "memreport back to its baseline" "$base" "$(xenstore-control memreport)"
tree=$(xenstore-ls -p / 2>&1)
left=""
for d in $domids; do
    if printf '%s\n' "$tree" | grep -Eq "(^| )$d = |[(, ][nrwb]$d[,)]"; then
        left="$left $d"
    fi
done
expect_eq "no node or permission entry names a dead guest" "" "$left"
heap=$(tr -d '\r' <"$stublog" | sed -n 's/^\[INFO\] xenstored: dom[0-9]* released (heap: \([0-9]*\) B in \([0-9]*\) blocks)$/\1 \2/p')
expect_eq "the stub's heap after the 2nd and the 10th release (no leak)" \
    "$(printf '%s\n' "$heap" | sed -n 2p)" "$(printf '%s\n' "$heap" | sed -n 10p)"
finish
