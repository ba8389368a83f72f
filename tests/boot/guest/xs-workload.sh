# The xenstore benchmark workload of scripts/bench-xen, run the same way in dom0 and in a
# Linux PV guest: usage: sh xs-workload.sh LABEL BASE ROUNDS KEYS
# ROUNDS rounds of one xenstore-write of KEYS key/value pairs under BASE, then ROUNDS rounds
# of one xenstore-read of the KEYS keys (each process: TRANSACTION_START, KEYS requests,
# TRANSACTION_END, so KEYS + 2 requests a round). Prints, per round,
# "BENCH LABEL write|read ROUND REQUESTS CENTISECONDS" (uptime clock), then
# "BENCH LABEL check ok" if the values read back are the ones written (else "... FAILED").
label=$1 base=$2 rounds=$3 keys=$4

cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }

pairs=""
paths=""
for i in $(seq 1 "$keys"); do
    pairs="$pairs $base/k$i v$i"
    paths="$paths $base/k$i"
done
for r in $(seq 1 "$rounds"); do
    t0=$(cs)
    # shellcheck disable=SC2086
    xenstore-write $pairs || echo "BENCH $label write failed in round $r"
    echo "BENCH $label write $r $((keys + 2)) $(($(cs) - t0))"
done
for r in $(seq 1 "$rounds"); do
    t0=$(cs)
    # shellcheck disable=SC2086
    xenstore-read $paths >/tmp/bench-read.out || echo "BENCH $label read failed in round $r"
    echo "BENCH $label read $r $((keys + 2)) $(($(cs) - t0))"
done
if [ "$(seq 1 "$keys" | sed 's/^/v/')" = "$(cat /tmp/bench-read.out)" ]; then
    echo "BENCH $label check ok"
else
    echo "BENCH $label check FAILED"
fi
