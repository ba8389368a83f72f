# scripts/bench-guests' scenario (run in dom0 by scripts/xen-run, with C xenstored in dom0 or
# the ferrostore stub): 16 and then 32 ferrostore guests started at once with `xl create ... &`
# (each runs the demo tour, 16 MiB, and powers itself off), then 16 more while two Linux
# guests spin on both pCPUs. Per round: the wall time until every `xl create` returned, the
# `xl create`s that failed (libxl's 10 s wait for the console tty timing out, issue 12), and
# that every guest is gone afterwards. Then no guest's home may be left in the store and the
# store must still serve. A line "BENCH <round> <ms> <failed>" per round.
# xen-run: --timeout 600
. /ferrostore/tests/boot/lib.sh

# round NAME COUNT: starts COUNT guests NAME-1..COUNT at once; prints the BENCH line; PASS if
# every guest is gone within 120 s.
round() {
    _name=$1
    _n=$2
    _start=$(uptime_ms)
    _i=1
    while [ $_i -le $_n ]; do
        _cfg=$(ferrostore_guest "$_name-$_i" demo)
        (xl create "$_cfg" >/tmp/"$_name-$_i".out 2>&1; echo $? >/tmp/"$_name-$_i".rc) &
        _i=$((_i + 1))
    done
    wait
    _created=$(uptime_ms)
    _failed=""
    _i=1
    while [ $_i -le $_n ]; do
        [ "$(cat /tmp/"$_name-$_i".rc)" = 0 ] || _failed="$_failed $_name-$_i"
        _i=$((_i + 1))
    done
    echo "BENCH $_name $((_created - _start)) $(echo $_failed | wc -w)"
    for _f in $_failed; do
        grep -m1 'libxl: error' /tmp/"$_f".out | sed "s/^/    $_f: /"
    done
    _left=""
    _i=1
    while [ $_i -le $_n ]; do
        wait_domain_gone "$_name-$_i" 120 >/dev/null || _left="$_left $_name-$_i"
        _i=$((_i + 1))
    done
    expect_eq "$_n guests ran their tour and are gone ($(($(uptime_ms) - _start)) ms in all)" "" "$_left"
}

round quiet16 16
round quiet32 32

# Two Linux guests spinning on both pCPUs (2 vCPUs each) while 16 more are created.
for s in spin1 spin2; do
    cat >/tmp/$s.cfg <<CFG
name = "$s"
type = "pv"
kernel = "/ferrostore/guest/vmlinuz"
ramdisk = "/ferrostore/guest/guest-initrd.gz"
memory = 128
vcpus = 2
extra = "console=hvc0 quiet -- (while :; do :; done) & while :; do :; done"
on_poweroff = "destroy"
CFG
    check "xl create $s (spins on 2 vCPUs)" xl create /tmp/$s.cfg
done
sleep 5
round spin16 16
check "xl destroy spin1" xl destroy spin1
check "xl destroy spin2" xl destroy spin2

stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
expect_eq "no guest's home is left in the store" "" \
    "$(xenstore-ls /local/domain | grep -E '^[0-9]+ = ' | grep -vE "^(0|${stub:-0}) = ")"
check "the store still serves dom0" xenstore-write /test/after ok
finish
