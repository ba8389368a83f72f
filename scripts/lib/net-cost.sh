# The network benchmark of scripts/bench-xen (issue 11 §6), run in dom0 under scripts/xen-run
# --xenstore stub: the ferrostore demo guest (xen-config/net-demo.cfg, 10.0.0.2) and a Debian
# Linux PV guest (10.0.0.3, xen-netfront, busybox nc on the discard port) on the same bridge.
# For each, ROUNDS times: MIB MiB sent by dom0 to TCP port 9 (discard; timed from connect to
# the guest's close) and 20 pings (round-trip average). Prints, best round of each:
#   BENCH net tcp <guest> <ms for MIB MiB> ms
#   BENCH net ping <guest> <average round trip, us> us
# xen-run: --xenstore stub --timeout 600
. /ferrostore/tests/boot/lib.sh
ROUNDS=3
MIB=4

net_setup
head -c $((MIB * 1048576)) /dev/urandom >/tmp/payload

# best_tcp IP: the shortest of ROUNDS sends, in ms ("" if one failed).
best_tcp() {
    best=
    for _ in $(seq $ROUNDS); do
        t0=$(uptime_ms)
        timeout 120 nc "$1" 9 </tmp/payload >/dev/null || return 0
        t=$(($(uptime_ms) - t0))
        [ -z "$best" ] || [ "$t" -lt "$best" ] && best=$t
    done
    echo "$best"
}

# best_ping IP: the lowest of ROUNDS 20-ping averages, in us.
best_ping() {
    best=
    for _ in $(seq $ROUNDS); do
        avg=$(ping -c 20 -i 0.2 -W 2 "$1" | sed -n 's|^round-trip min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p')
        [ -n "$avg" ] || return 0
        us=$(awk -v a="$avg" 'BEGIN { printf "%d\n", a * 1000 }')
        [ -z "$best" ] || [ "$us" -lt "$best" ] && best=$us
    done
    echo "$best"
}

measure() {
    ping -c 2 -W 5 "$2" >/dev/null 2>&1
    tcp=$(best_tcp "$2")
    rtt=$(best_ping "$2")
    [ -n "$tcp" ] && echo "BENCH net tcp $1 $tcp ms"
    [ -n "$rtt" ] && echo "BENCH net ping $1 $rtt us"
    [ -n "$tcp" ] && [ -n "$rtt" ]
}

check "xl create net-demo.cfg" xl create /ferrostore/xen-config/net-demo.cfg
if wait_for_marker "$(guest_log ferrostore-net)" '^net: (serving|FAILED)' 60 &&
    measure ferrostore 10.0.0.2; then
    pass "ferrostore guest measured"
else
    fail "ferrostore guest measured"
fi
xl shutdown ferrostore-net
wait_domain_gone ferrostore-net 60

cat >/tmp/linux-net.cfg <<CFG
name = "linux-net"
type = "pv"
kernel = "/ferrostore/guest/vmlinuz"
ramdisk = "/ferrostore/guest/guest-initrd.gz"
memory = 256
vif = ["mac=00:16:3e:fe:00:03,bridge=xenbr0,script=/ferrostore/xen-config/vif-ferrostore"]
extra = "console=hvc0 quiet -- ip addr add 10.0.0.3/24 dev eth0; ip link set eth0 up; echo LINUX-NET-UP; while true; do nc -l -p 9 >/dev/null; done"
on_poweroff = "destroy"
CFG
check "xl create linux-net" xl create /tmp/linux-net.cfg
if wait_for_marker "$(guest_log linux-net)" '^LINUX-NET-UP' 120 && measure linux 10.0.0.3; then
    pass "Linux guest measured"
else
    fail "Linux guest measured"
fi
xl destroy linux-net
finish
