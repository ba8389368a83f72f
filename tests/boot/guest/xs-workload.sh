# The xenstore benchmark workload of scripts/bench-xen, run the same way in dom0 and in a
# Linux PV guest: usage: sh xs-workload.sh LABEL BASE ROUNDS KEYS
# Each round is one xenstore-write of KEYS key/value pairs under BASE, then one xenstore-read
# of the KEYS keys (each process: TRANSACTION_START, KEYS requests, TRANSACTION_END).
# Prints "BENCH LABEL write|read REQUESTS CENTISECONDS" per phase (uptime clock), and
# "BENCH LABEL check ok" if the last values read back are the ones written.
label=$1 base=$2 rounds=$3 keys=$4

cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }

pairs=""
paths=""
for i in $(seq 1 "$keys"); do
    pairs="$pairs $base/k$i v$i"
    paths="$paths $base/k$i"
done
requests=$((rounds * (keys + 2)))
t0=$(cs)
for r in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    xenstore-write $pairs || echo "BENCH $label write failed in round $r"
done
t1=$(cs)
for r in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    xenstore-read $paths >/tmp/bench-read.out || echo "BENCH $label read failed in round $r"
done
t2=$(cs)
echo "BENCH $label write $requests $((t1 - t0))"
echo "BENCH $label read $requests $((t2 - t1))"
if [ "$(seq 1 "$keys" | sed 's/^/v/')" = "$(cat /tmp/bench-read.out)" ]; then
    echo "BENCH $label check ok"
else
    echo "BENCH $label check FAILED"
fi
