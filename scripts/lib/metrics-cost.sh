# What the stub's metrics endpoint costs the store (scripts/bench-xen; issue 11 §6), run in
# dom0 under scripts/xen-run --xenstore stub --stub-conf xenstore-stubdom-metrics.conf. The
# dom0 xenstore workload (tests/boot/guest/xs-workload.sh, ROUNDS x KEYS) runs three ways,
# interleaved CYCLES times: alone; with a scraper fetching the stub's /metrics every 100 ms;
# and with the same scraper aimed at dom0's own closed port 9100 (the floor: what starting
# a wget every 100 ms costs dom0 itself, whoever answers). Prints each workload round as
#   BENCH metrics <mode> <write|read> <round> <requests> <centiseconds>
# and, last, BENCH metrics scrapes <the stub's xenstore_metrics_scrapes_total>.
# xen-run: --xenstore stub --stub-conf xenstore-stubdom-metrics.conf --timeout 900
. /ferrostore/tests/boot/lib.sh
ROUNDS=5
KEYS=200
CYCLES=3
w=/ferrostore/tests/boot/guest/xs-workload.sh
stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)

net_setup
check "xl network-attach to the stub" timeout 60 xl network-attach "$stub" \
    mac=00:16:3e:fe:00:09 bridge=xenbr0 script=/ferrostore/xen-config/vif-ferrostore
n=0
until timeout 5 wget -q -O /dev/null http://10.0.0.9:9100/status; do
    n=$((n + 1))
    [ $n -lt 30 ] || break
    sleep 1
done

# run MODE CYCLE: the workload with MODE's scraper (none, stub, dom0) in the background.
run() {
    rm -f /tmp/scrape-stop
    case $1 in
    stub) target=http://10.0.0.9:9100/metrics ;;
    dom0) target=http://10.0.0.1:9100/metrics ;;
    *) target= ;;
    esac
    if [ -n "$target" ]; then
        (while [ ! -e /tmp/scrape-stop ]; do
            timeout 5 wget -q -O /dev/null "$target" 2>/dev/null
            sleep 0.1
        done) &
    fi
    sh $w "metrics $1" "/bench/$1-$2" $ROUNDS $KEYS
    touch /tmp/scrape-stop
    wait
}

for c in $(seq $CYCLES); do
    for mode in none stub dom0; do
        run $mode "$c"
    done
done
scrapes=$(timeout 10 wget -q -O - http://10.0.0.9:9100/metrics | awk '$1 == "xenstore_metrics_scrapes_total" { print $2 }')
echo "BENCH metrics scrapes ${scrapes:-none}"
[ -n "$scrapes" ] && pass "the scraper's requests were answered ($scrapes)" || fail "no scrape count"
finish
