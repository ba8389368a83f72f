# dom0 scenario of scripts/demo (run with --xenstore stub): ferrostore is this host's xenstore.
# Shows the stub in `xl list` and the tree it serves, then starts two guests that use it: the
# boot-tour kernel of xen-config/hello.cfg (its console reaches us through xenconsoled, which
# finds guests through the stub) and the same kernel in xenstore-client mode
# (xen-config/xsclient.cfg), which reads, writes, commits a transaction and waits on a watch
# through its own store ring, served by the stub. Then the demo kernel goes on the network
# (xen-config/net-demo.cfg: netfront and smoltcp; dom0 pings it, echoes a line over TCP and
# fetches its page). Last, the stub is replaced in place by a
# second build (`xenstore-control live-update`): same domain, same store, new version.
# xen-run prints the consoles afterwards.
. /ferrostore/tests/boot/lib.sh

stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
echo "DEMO: init-xenstore-domain started ferrostore as domain $stub; xl list:"
xl list
expect_match "xl list shows the Xenstore domain" "^Xenstore +$stub " "$(xl list)"
echo "DEMO: the tree the stub serves (xenstore-ls /local/domain/0):"
xenstore-ls /local/domain/0 | head -n 12
echo "DEMO: the stub's memory report (xenstore-control memreport):"
xenstore-control memreport

# run_guest CFG NAME DONE_PATTERN: xl create CFG and wait until it powers itself off.
run_guest() {
    echo "DEMO: xl create $1"
    check "xl create $1" xl create "$1"
    if wait_domain_gone "$2" 60; then
        pass "$2 ran and powered itself off"
    else
        fail "$2 powered itself off within 60 s" "$(xl list)"
        xl destroy "$2"
    fi
    expect_match "$2's console shows '$3'" "$3" "$(tr -d '\r' <"$(guest_log "$2")")"
}

run_guest /ferrostore/xen-config/hello.cfg ferrostore-hello '^demo: done$'

cfg=/ferrostore/xen-config/xsclient.cfg
name=ferrostore-xsclient
echo "DEMO: xl create $cfg (it waits on a watch until dom0 writes its data/from-dom0)"
check "xl create $cfg" xl create "$cfg"
if wait_for_marker "$(guest_log $name)" '^xsclient: (waiting for dom0|FAILED)' 90; then
    id=$(xl domid $name)
    echo "DEMO: xenstore-write /local/domain/$id/data/from-dom0 hello-from-dom0"
    check "dom0 writes the guest's watched node" \
        xenstore-write /local/domain/$id/data/from-dom0 hello-from-dom0
fi
if wait_domain_gone $name 60; then
    pass "$name ran and powered itself off"
else
    fail "$name powered itself off within 60 s" "$(xl list)"
    xl destroy $name
fi
expect_match "$name's console shows 'xsclient: done'" '^xsclient: done$' \
    "$(tr -d '\r' <"$(guest_log $name)")"
echo "DEMO: after both guests are gone, the stub released them (xenstore-ls /local/domain):"
xenstore-ls /local/domain | grep -E '^[0-9]+ = ' || true
if command -v xen-9pfsd >/dev/null; then
    echo "DEMO: the stub's log, on its 9pfs device (dom0's /var/lib/xen/xenstore/ferrostore.log):"
    sed 's/^/    /' /var/lib/xen/xenstore/ferrostore.log
    expect_match "the stub's log file shows the xsclient guest released" \
        "\\[INFO\\] xenstored: dom$id released" "$(stub_log_text)"
fi

echo "DEMO: the demo kernel on the network: dom0's bridge xenbr0 (10.0.0.1), xl create net-demo.cfg (10.0.0.2)"
net_setup
name=ferrostore-net
check "xl create /ferrostore/xen-config/net-demo.cfg" xl create /ferrostore/xen-config/net-demo.cfg
if wait_for_marker "$(guest_log $name)" '^net: (serving|FAILED)' 60; then
    tr -d '\r' <"$(guest_log $name)" | grep '^net: ' | sed 's/^/    /'
    n=0
    until ping -c 1 -W 1 10.0.0.2 >/dev/null 2>&1 || [ $n -ge 20 ]; do n=$((n + 1)); done
    echo "DEMO: ping -c 3 10.0.0.2"
    pings=$(ping -c 3 -W 2 10.0.0.2 2>&1)
    printf '%s\n' "$pings" | sed 's/^/    /'
    expect_match "the guest answers ping" '^3 packets transmitted, 3 packets received' "$pings"
    echo "DEMO: echo 'hello over netfront' | nc 10.0.0.2 7"
    expect_eq "the guest echoes over TCP" "hello over netfront" \
        "$(echo 'hello over netfront' | timeout 10 nc 10.0.0.2 7)"
    echo "DEMO: wget -O - http://10.0.0.2/ (the guest's page, served by smoltcp)"
    page=$(timeout 20 wget -q -O - http://10.0.0.2/ 2>&1)
    printf '%s\n' "$page" | grep '<li>' | sed 's/^/    /'
    expect_match "the guest serves its page" '^<h1>ferrostore: a Rust PV kernel on Xen</h1>$' "$page"
fi
check "xl shutdown $name" xl shutdown $name
if wait_domain_gone $name 60; then
    pass "$name closed its vif and powered off on xl shutdown"
else
    fail "$name powered off on xl shutdown within 60 s" "$(xl list)"
    xl destroy $name
fi

console=$(guest_log Xenstore)
version() { tr -d '\r' <"$console" | sed -n 's/^ferrostore \([^ ]*\): PV kernel booted$/\1/p' | tail -n 1; }
echo "DEMO: live update: the stub runs ferrostore $(version) as domain $stub; replacing it in place"
echo "DEMO: xenstore-write /demo/kept still-here; xenstore-control live-update /ferrostore/ferrostore-next.gz"
xenstore-write /demo/kept still-here
check "xenstore-control live-update /ferrostore/ferrostore-next.gz" \
    xenstore-control live-update /ferrostore/ferrostore-next.gz
echo "DEMO: the stub now runs ferrostore $(version) as domain $(xenstore-read /tool/xenstored/domid);" \
    "/demo/kept = $(xenstore-read /demo/kept)"
tr -d '\r' <"$console" | grep 'xenstored: live update:' | sed 's/^/    /'
expect_match "the new build is running" '[+]update-test$' "$(version)"
expect_eq "the store survived the update" still-here "$(xenstore-read /demo/kept)"
finish
