# Issue 11 §4: the stub's read-only metrics endpoint. The stub is ferrostore-metrics.gz with
# --metrics 9100 --metrics-allow 10.0.0.1/32 ip=10.0.0.9/24
# (xen-config/xenstore-stubdom-metrics.conf); dom0 attaches a vif to it (xl network-attach)
# and scrapes GET /metrics and /status: the request counters rise by exactly what a dom0
# workload sent, no path or value of the store appears, other paths and methods get 404 and
# 405. A Linux guest outside the allow-list gets no answer of any kind. The vif is detached
# and attached again: the endpoint closes it and serves on the new one. Last, a live update:
# the vif is closed before the switch and the next kernel connects it again.
# xen-run: --xenstore stub --stub-conf xenstore-stubdom-metrics.conf --timeout 400
. /ferrostore/tests/boot/lib.sh

stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
url=http://10.0.0.9:9100
vif="mac=00:16:3e:fe:00:09 bridge=xenbr0 script=/ferrostore/xen-config/vif-ferrostore"

# serving_count: how many times the stub has said it serves.
serving_count() { stub_log_text | grep -c 'xenstored: metrics: serving GET /metrics'; }
# wait_serving N: until the stub said so N times (30 s).
wait_serving() {
    n=0
    while [ "$(serving_count)" -lt "$1" ] && [ $n -lt 300 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    [ "$(serving_count)" -ge "$1" ]
}
# sample NAME: the value of metric line NAME (with labels) in /tmp/scrape, or "none".
sample() { awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "none" }' /tmp/scrape; }
scrape() { rm -f /tmp/scrape; timeout 20 wget -q -O /tmp/scrape "$url/metrics"; }

net_setup
expect_match "the stub waits for a vif" 'xenstored: metrics: waiting for a vif \(xl network-attach\) to serve port 9100' "$(stub_log_text)"
check "xl network-attach to the stub (domain $stub)" timeout 60 xl network-attach "$stub" $vif
if wait_serving 1; then
    pass "the stub connected its vif and serves"
else
    fail "the stub connected its vif and serves" "$(stub_log_text | tail -n 5)"
fi
expect_eq "backend and frontend Connected" "4 4" \
    "$(xenstore-read /local/domain/0/backend/vif/$stub/0/state) $(xenstore-read /local/domain/$stub/device/vif/0/state)"

check "GET /metrics" scrape
text=$(cat /tmp/scrape 2>/dev/null)
expect_match "metrics: the server and its version" '^xenstore_info\{server="ferrostore",version="0\.1\.0"\} 1$' "$text"
expect_match "metrics: dom0's nodes against its quota" '^xenstore_domain_nodes_quota\{domid="0"\} [0-9]+$' "$text"
expect_match "metrics: live heap" '^xenstore_heap_used_bytes [1-9][0-9]*$' "$text"
writes0=$(sample 'xenstore_requests_total{type="WRITE"}')
enoent0=$(sample 'xenstore_errors_total{error="ENOENT"}')
[ "$enoent0" = none ] && enoent0=0
for i in $(seq 20); do
    xenstore-write /metrics-test/k$i secret-value-$i
done
for i in $(seq 5); do
    xenstore-read /metrics-test/missing$i >/dev/null 2>&1
done
check "GET /metrics again" scrape
text=$(cat /tmp/scrape 2>/dev/null)
expect_eq "WRITE requests rose by exactly the workload's 20" 20 $(($(sample 'xenstore_requests_total{type="WRITE"}') - writes0))
expect_eq "ENOENT errors rose by exactly the workload's 5" 5 $(($(sample 'xenstore_errors_total{error="ENOENT"}') - enoent0))
expect_eq "no path or value of the store in the answer" "" "$(grep -E 'metrics-test|secret-value|/local' /tmp/scrape)"
status=$(timeout 20 wget -q -O - "$url/status")
expect_match "GET /status: one JSON object" \
    '^\{"server":"ferrostore","version":"0\.1\.0","uptime_ms":[0-9]+,"requests":[0-9]+,"errors":[0-9]+,"domains":[0-9]+,"nodes":[0-9]+,"connections":[0-9]+,"heap_used":[0-9]+,"heap_size":[0-9]+,"lost_wakeups":[0-9]+,"scrapes":[0-9]+\}$' "$status"
expect_eq "other paths: 404" "HTTP/1.1 404 Not Found" \
    "$(printf 'GET /nope HTTP/1.0\r\n\r\n' | timeout 10 nc 10.0.0.9 9100 | head -n 1 | tr -d '\r')"
expect_eq "other methods: 405" "HTTP/1.1 405 Method Not Allowed" \
    "$(printf 'DELETE /metrics HTTP/1.0\r\n\r\n' | timeout 10 nc 10.0.0.9 9100 | head -n 1 | tr -d '\r')"

# The probe's script, as /guest.sh of its initrd (tests/boot/initramfs/guest-init runs it).
mkdir -p /tmp/probe-extra
cat >/tmp/probe-extra/guest.sh <<'PROBE'
ip addr add 10.0.0.3/24 dev eth0
ip link set eth0 up
sleep 1
ping -c 2 -W 3 10.0.0.1 >/dev/null && echo "PROBE dom0 answers"
if timeout 8 wget -q -O /dev/null http://10.0.0.9:9100/metrics; then
    echo "PROBE metrics answered"
else
    echo "PROBE metrics silent"
fi
if ping -c 2 -W 2 10.0.0.9 >/dev/null; then
    echo "PROBE stub answers ping"
else
    echo "PROBE stub silent to ping"
fi
PROBE
(cd /tmp/probe-extra && echo guest.sh | cpio -o -H newc 2>/dev/null | gzip) >/tmp/probe-extra.gz
cat /ferrostore/guest/guest-initrd.gz /tmp/probe-extra.gz >/tmp/probe-initrd.gz
cat >/tmp/probe.cfg <<CFG
name = "probe"
type = "pv"
kernel = "/ferrostore/guest/vmlinuz"
ramdisk = "/tmp/probe-initrd.gz"
memory = 128
vif = ["mac=00:16:3e:fe:00:03,bridge=xenbr0,script=/ferrostore/xen-config/vif-ferrostore"]
extra = "console=hvc0 quiet"
on_poweroff = "destroy"
CFG
check "a Linux guest at 10.0.0.3 (outside the allow-list) starts" xl create /tmp/probe.cfg
wait_for_marker "$(guest_log probe)" '^GUEST-EXIT ' 120
probe=$(grep '^PROBE' "$(guest_log probe)" | tr -d '\r')
expect_eq "outside the allow-list: no answer of any kind" "PROBE dom0 answers
PROBE metrics silent
PROBE stub silent to ping" "$probe"
wait_domain_gone probe 30 || xl destroy probe
check "GET /metrics after the probe" scrape
expect_match "the probe's frames were dropped and counted" '^xenstore_metrics_filtered_frames_total [1-9][0-9]*$' "$(cat /tmp/scrape)"

check "xl network-detach from the stub" timeout 60 xl network-detach "$stub" 0
if wait_for_marker "$(stub_log)" 'xenstored: metrics: the backend of device/vif/0 went away; closing the vif' 30; then
    pass "the stub closed the detached vif"
else
    fail "the stub closed the detached vif"
fi
check "xl network-attach to the stub again" timeout 60 xl network-attach "$stub" $vif
if wait_serving 2; then
    pass "the stub serves on the attached vif"
else
    fail "the stub serves on the attached vif" "$(stub_log_text | tail -n 5)"
fi
check "GET /metrics on the new vif" scrape
expect_match "the answer is whole" '^xenstore_info\{server="ferrostore"' "$(cat /tmp/scrape)"
check "the store still serves" xenstore-read /metrics-test/k20

# A live update closes the vif first (netback must unmap the stub's pages before they become
# the next kernel's memory); the next kernel asks the backend to reconnect and serves again.
check "xenstore-control live-update (the same image again)" \
    xenstore-control live-update /ferrostore/ferrostore-metrics.gz
if wait_serving 3; then
    pass "after the live update the new kernel serves on the same vif"
else
    fail "after the live update the new kernel serves on the same vif" "$(stub_log_text | tail -n 8)"
fi
check "GET /metrics after the live update" scrape
expect_match "the new kernel's answer is whole" '^xenstore_info\{server="ferrostore"' "$(cat /tmp/scrape)"
expect_eq "the store survived the update" secret-value-20 "$(xenstore-read /metrics-test/k20)"
stub_console_clean
finish
