# Stub domain, scale (issue 12): 16 and then 32 ferrostore guests started at once with
# `xl create ... &` from dom0 (each runs the demo tour, 16 MiB, and powers itself off), then 16
# more while two Linux guests spin on both pCPUs. Every `xl create` must succeed (libxl's
# console wait must not time out), every guest must be gone afterwards, with no node of any
# left in the store, and the stub must still serve with a clean console. Prints the wall time
# of each round (the benchmark, scripts/bench-scale, compares servers; this asserts).
# xen-run: --xenstore stub --timeout 600
. /ferrostore/tests/boot/lib.sh

# round NAME COUNT: starts COUNT guests NAME-1..COUNT at once; PASS if every xl create
# returned 0 and every guest is gone within 120 s.
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
    expect_eq "$_n guests at once: every xl create succeeded ($((_created - _start)) ms for all)" "" "$_failed"
    for _f in $_failed; do
        sed 's/^/    /' /tmp/"$_f".out
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

expect_eq "no guest's home is left in the store" "" \
    "$(xenstore-ls /local/domain | grep -E '^[0-9]+ = ' | grep -vE "^(0|$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)) = ")"
check "the stub still serves dom0" xenstore-write /test/after ok
stub_console_clean
finish
