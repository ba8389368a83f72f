# Stub domain, many guests at once (issue 12): 16 and then 32 ferrostore guests (demo tour,
# 16 MiB, poweroff) started at once with `xl create ... &`, first on a quiet machine, then
# while two Linux guests keep every pCPU busy. Every `xl create` must succeed (libxl fails one
# when xenconsoled has not written the console tty within 10 s), every guest must run its tour
# and be gone, no guest's home may be left in the store, and the store must still serve.
# scripts/bench-guests runs this scenario under C xenstored and under the stub and prints the
# "BENCH <round> <ms> <failed> <retried>" lines side by side.
# xen-run: --xenstore stub --timeout 480
. /ferrostore/tests/boot/lib.sh

# round NAME COUNT: COUNT guests at once, every one created and gone.
round() {
    guests_at_once "$1" "$2"
    expect_eq "$1: all $2 xl create succeeded" 0 "$GUESTS_FAILED"
    expect_eq "$1: all $2 guests ran their tour and are gone" "" "$GUESTS_LEFT"
}

expect_match "xenconsoled runs round-robin (xen-config/dom0.conf)" 'SCHED_RR' \
    "$(chrt -p "$(cat /var/run/xen/xenconsoled.pid)")"
round quiet16 16
round quiet32 32
spinners_start
round spin16 16
round spin32 32
spinners_stop

stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
expect_eq "no guest's home is left in the store" "" \
    "$(xenstore-ls /local/domain | grep -E '^[0-9]+ = ' | grep -vE "^(0|${stub:-0}) = ")"
check "the store still serves dom0" xenstore-write /test/after ok
finish
