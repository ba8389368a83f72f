# Issue 11: the demo kernel on the network (xen-config/net-demo.cfg): netfront's handshake
# with dom0's xen-netback through the stub, smoltcp answering 10/10 pings, echoing 1 MiB
# over TCP intact, serving its page (and 404/405) to dom0; the vif detached and attached
# again (the guest closes it, then connects the new one); `xl shutdown` closing the vif in
# order; a second guest without ip= configured by DHCPv4 (busybox udhcpd in dom0). Markers:
# kernel/src/demo/net.rs.
# xen-run: --xenstore stub --timeout 400
. /ferrostore/tests/boot/lib.sh

cfg=/ferrostore/xen-config/net-demo.cfg
name=ferrostore-net
log=$(guest_log $name)
guest=10.0.0.2
vif_spec="mac=00:16:3e:fe:00:02 bridge=xenbr0 script=/ferrostore/xen-config/vif-ferrostore"

net_setup
check "xl create net-demo.cfg" xl create $cfg
wait_for_marker "$log" '^net: (serving|FAILED)' 60
id=$(xl domid $name)
out=$(grep '^net: ' "$log" | tr -d '\r')
expect_eq "netfront connected through the stub, static address, services up" "net: vif device/vif/0 connected, mac 00:16:3e:fe:00:02, backend /local/domain/0/backend/vif/$id/0
net: address 10.0.0.2/24, gateway 10.0.0.1
net: serving ping, tcp echo on 7, discard on 9, http on 80" "$out"
expect_eq "backend and frontend Connected" "4 4" \
    "$(xenstore-read /local/domain/0/backend/vif/$id/0/state) $(xenstore-read /local/domain/$id/device/vif/0/state)"

# Up: the first answer (a connection whose transmit side the backend does not serve is
# connected again by the guest after 3 s: the close markers below say how often).
n=0
until ping -c 1 -W 1 $guest >/dev/null 2>&1 || [ $n -ge 20 ]; do n=$((n + 1)); done
pings=$(ping -c 10 -W 2 $guest 2>&1)
printf '%s\n' "$pings" | grep -q '^10 packets transmitted, 10 packets received' || net_state
expect_match "10/10 pings answered" '^10 packets transmitted, 10 packets received, 0% packet loss$' "$pings"

head -c 1048576 /dev/urandom >/tmp/echo.in
t0=$(uptime_ms)
timeout 60 nc $guest 7 </tmp/echo.in >/tmp/echo.out
echo_rc=$?
t1=$(uptime_ms)
expect_eq "1 MiB echoed over TCP, same size and checksum, nc exit 0" \
    "1048576 $(md5sum </tmp/echo.in) 0" "$(wc -c </tmp/echo.out | tr -d ' ') $(md5sum </tmp/echo.out) $echo_rc"
echo "NOTE tcp echo: 1 MiB there and back in $((t1 - t0)) ms"
timeout 60 nc $guest 9 </tmp/echo.in >/tmp/discard.out
expect_eq "1 MiB sent to the discard port, nothing back, closed by the guest (nc exit 0)" "0 0" \
    "$(wc -c </tmp/discard.out | tr -d ' ') $?"

rm -f /tmp/page.html
check "wget fetches the page" timeout 20 wget -q -O /tmp/page.html http://$guest/
page=$(cat /tmp/page.html 2>/dev/null)
expect_match "the page has the boot facts" '^<h1>ferrostore: a Rust PV kernel on Xen</h1>$' "$page"
expect_match "the page names the Xen version" "^<li>Xen $(xl info | sed -n 's/^xen_major *: *//p')\.$(xl info | sed -n 's/^xen_minor *: *//p')</li>$" "$page"
expect_match "the page counts packets" '^<li>packets: rx [1-9][0-9]* \([0-9]+ bytes\), tx [1-9][0-9]* \([0-9]+ bytes\), rx errors 0, tx errors 0, rejected 0</li>$' "$page"
expect_eq "other paths: 404" "HTTP/1.1 404 Not Found" \
    "$(printf 'GET /nope HTTP/1.0\r\n\r\n' | timeout 10 nc $guest 80 | head -n 1 | tr -d '\r')"
expect_eq "other methods: 405" "HTTP/1.1 405 Method Not Allowed" \
    "$(printf 'POST / HTTP/1.0\r\n\r\n' | timeout 10 nc $guest 80 | head -n 1 | tr -d '\r')"

check "xl network-detach" timeout 60 xl network-detach $name 0
if wait_for_marker "$log" '^net: backend of device/vif/0 went away' 30; then
    expect_match "the guest closed the detached vif" \
        '^net: backend of device/vif/0 went away; vif closed \(rx [0-9]+, tx [0-9]+ packets, 0 rejected, [0-9]+ tx kicks\)$' \
        "$(tr -d '\r' <"$log")"
else
    fail "the guest closed the detached vif"
fi
connected() { grep -c '^net: vif device/vif/[0-9]* connected, mac 00:16:3e:fe:00:02, ' "$log"; }
before=$(connected)
check "xl network-attach" timeout 60 xl network-attach $name $vif_spec
n=0
while [ "$(connected)" -le "$before" ] && [ $n -lt 300 ]; do
    sleep 0.1
    n=$((n + 1))
done
expect_eq "the guest connected the attached vif (one more connection)" $((before + 1)) "$(connected)"
n=0
until ping -c 1 -W 1 $guest >/dev/null 2>&1 || [ $n -ge 20 ]; do n=$((n + 1)); done
pings=$(ping -c 3 -W 2 $guest 2>&1)
expect_match "pings answered on the new vif" '^3 packets transmitted, 3 packets received, 0% packet loss$' "$pings"

check "xl shutdown" xl shutdown $name
if wait_for_marker "$log" '^net: (done|FAILED)' 60 && wait_domain_gone $name 30; then
    pass "the guest shut down on request and is gone"
else
    fail "the guest shut down on request and is gone"
fi
expect_match "shutdown closed the vif in order" \
    '^net: shutdown requested \(poweroff\); vif closed \(rx [0-9]+, tx [0-9]+ packets, 0 rejected, [0-9]+ tx kicks\), [0-9]+ bytes echoed, [0-9]+ pages served$' \
    "$(tr -d '\r' <"$log")"
expect_eq "no netfront warnings" "" "$(grep -E 'netfront|WARN|ERROR' "$log" | tr -d '\r')"

# Without ip= the guest asks for an address by DHCPv4 (busybox udhcpd on xenbr0 here).
cat >/tmp/udhcpd.conf <<CONF
start 10.0.0.100
end 10.0.0.110
interface xenbr0
lease_file /tmp/udhcpd.leases
option subnet 255.255.255.0
option router 10.0.0.1
CONF
: >/tmp/udhcpd.leases
udhcpd -f /tmp/udhcpd.conf >/tmp/udhcpd.log 2>&1 &
dhcpd=$!
sed -e 's/^name = .*/name = "ferrostore-dhcp"/' -e 's/^cmdline = .*/cmdline = "net"/' \
    -e 's/00:16:3e:fe:00:02/00:16:3e:fe:00:04/' $cfg >/tmp/net-dhcp.cfg
check "xl create a net guest without ip=" xl create /tmp/net-dhcp.cfg
dlog=$(guest_log ferrostore-dhcp)
wait_for_marker "$dlog" '^net: (address|FAILED)' 60
expect_match "DHCP gave the guest an address and the gateway" \
    '^net: address 10\.0\.0\.1(0[0-9]|10)/24, gateway 10\.0\.0\.1$' "$(tr -d '\r' <"$dlog")"
expect_eq "no lease lost before the first one" "" "$(grep 'lease lost' "$dlog")"
addr=$(tr -d '\r' <"$dlog" | sed -n 's|^net: address \([0-9.]*\)/24, gateway .*|\1|p' | head -n 1)
pings=$(ping -c 3 -W 2 "${addr:-10.0.0.100}" 2>&1)
expect_match "the DHCP-configured guest answers ping" '^3 packets transmitted, 3 packets received, 0% packet loss$' "$pings"
check "xl shutdown ferrostore-dhcp" xl shutdown ferrostore-dhcp
wait_domain_gone ferrostore-dhcp 60 || xl destroy ferrostore-dhcp
kill $dhcpd 2>/dev/null
expect_eq "no vif left in dom0" "" "$(ip -o link show | grep -o 'vif[0-9.]*')"
stub_console_clean
finish
