# Helpers for boot scenarios. Scenarios run in dom0 under scripts/xen-run (busybox sh) and
# start with:   . /ferrostore/tests/boot/lib.sh
# Every check prints exactly one "PASS <what>" or "FAIL <what>" line; `finish` ends the
# scenario. A scenario may set its xen-run options with a line "# xen-run: --xenstore none".
#
#   pass WHAT                       record and print "PASS WHAT"
#   fail WHAT [DETAIL...]           record and print "FAIL WHAT", then each DETAIL line
#   check WHAT CMD [ARG...]         run CMD; PASS if it exits 0, else FAIL with its output
#   expect_eq WHAT EXPECTED ACTUAL  PASS if the two strings are identical, else FAIL showing both
#   expect_match WHAT PATTERN TEXT  PASS if TEXT has a line matching grep -E PATTERN
#   expect_range WHAT LOW HIGH N    PASS if the integer N is within LOW..HIGH (inclusive)
#   wait_for_marker LOG PATTERN TIMEOUT_S
#                                   wait until file LOG has a line matching grep -E PATTERN;
#                                   returns 0, or 1 after TIMEOUT_S (then prints LOG's tail)
#   wait_domain_gone NAME TIMEOUT_S wait until `xl domid NAME` fails; returns 0 or 1
#   guest_log NAME                  prints the path of guest NAME's console log (xenconsoled)
#   stub_log                        prints the path of the file with the stub's log lines:
#                                   on 4.19+ (xen-9pfsd serves the stub's 9pfs device) dom0's
#                                   /var/lib/xen/xenstore/ferrostore.log, whose lines start
#                                   with a UTC stamp; else its console log. Match its lines
#                                   unanchored: '\[INFO\] xenstored: ...'
#   stub_log_text                   prints stub_log's lines without stamps and \r
#   ferrostore_guest NAME [CMDLINE] writes /tmp/NAME.cfg, an xl config for the ferrostore
#                                   kernel as a 16 MiB PV guest with that command line
#                                   (destroyed at poweroff, kept on a crash); prints its path
#   linux_guest NAME COMMAND [TIMEOUT_S]
#                                   boots a Debian Linux PV guest NAME (128 MiB, initrd of
#                                   tests/boot/initramfs/guest-init) that runs COMMAND with
#                                   sh -c (no double quotes in it) and powers off; returns 0
#                                   once its console shows "GUEST-EXIT 0" within TIMEOUT_S
#                                   (default 90) and the domain is gone, else prints why, 1
#   uptime_ms                       prints dom0's uptime in milliseconds (for timings)
#   stub_console_clean [PATTERN]    PASS if the stub's console log (guest_log Xenstore) has no
#                                   [WARN] or [ERROR] line other than those matching
#                                   grep -E PATTERN, else FAIL listing them
#   net_setup                       loads xen-netback and the bridge modules and makes the
#                                   bridge xenbr0 at 10.0.0.1/24 (xen-config/net-demo.cfg's
#                                   vifs join it); PASS or FAIL
#   net_state                       prints dom0's view of the network (links and their
#                                   counters, the bridge, neighbours) for a failed check
#   finish                          print "RESULT: N passed, M failed"; exit 0 only if
#                                   at least one check passed and none failed
# Counters: PASSED, FAILED. Polling interval of the wait_* helpers: 0.1 s.

PASSED=0
FAILED=0

pass() {
    PASSED=$((PASSED + 1))
    echo "PASS $1"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    shift
    for detail in "$@"; do
        printf '%s\n' "$detail" | sed 's/^/    /'
    done
}

check() {
    _what=$1
    shift
    if _out=$("$@" 2>&1); then
        pass "$_what"
    else
        fail "$_what" "command failed (exit $?): $*" "$_out"
    fi
}

expect_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected: $2" "actual:   $3"
    fi
}

expect_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        pass "$1"
    else
        fail "$1" "no line matches /$2/ in:" "$3"
    fi
}

expect_range() {
    if [ "$4" -ge "$2" ] 2>/dev/null && [ "$4" -le "$3" ]; then
        pass "$1 ($4)"
    else
        fail "$1" "expected $2..$3, got '$4'"
    fi
}

# _poll TIMEOUT_S CMD...: runs CMD every 0.1 s until it succeeds (0) or TIMEOUT_S passes (1).
_poll() {
    _deadline=$(($(uptime_ms) + $1 * 1000))
    shift
    while ! "$@"; do
        [ "$(uptime_ms)" -lt "$_deadline" ] || return 1
        sleep 0.1
    done
}

_has_marker() {
    [ -f "$1" ] && grep -Eq -- "$2" "$1"
}

wait_for_marker() {
    if _poll "$3" _has_marker "$1" "$2"; then
        return 0
    fi
    echo "wait_for_marker: no /$2/ in $1 after $3 s; its last lines:"
    tail -n 20 "$1" 2>/dev/null | sed 's/^/    /'
    return 1
}

_domain_gone() {
    ! xl domid "$1" >/dev/null 2>&1
}

wait_domain_gone() {
    if _poll "$2" _domain_gone "$1"; then
        return 0
    fi
    echo "wait_domain_gone: domain $1 still exists after $2 s"
    return 1
}

guest_log() {
    echo "/var/log/xen/console/guest-$1.log"
}

stub_log() {
    if command -v xen-9pfsd >/dev/null; then
        echo /var/lib/xen/xenstore/ferrostore.log
    else
        guest_log Xenstore
    fi
}

stub_log_text() {
    tr -d '\r' <"$(stub_log)" | sed 's/^[0-9][-0-9T:.]*Z //'
}

ferrostore_guest() {
    cat >"/tmp/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "/ferrostore/ferrostore-demo.gz"
memory = 16
cmdline = "${2:-}"
on_poweroff = "destroy"
on_crash = "preserve"
EOF
    echo "/tmp/$1.cfg"
}

linux_guest() {
    _cfg=/tmp/$1.cfg
    cat >"$_cfg" <<EOF
name = "$1"
type = "pv"
kernel = "/ferrostore/guest/vmlinuz"
ramdisk = "/ferrostore/guest/guest-initrd.gz"
memory = 128
extra = "console=hvc0 quiet -- $2"
on_poweroff = "destroy"
EOF
    if ! _out=$(xl create "$_cfg" 2>&1); then
        echo "linux_guest: xl create $1 failed: $_out"
        return 1
    fi
    wait_for_marker "$(guest_log "$1")" '^GUEST-EXIT ' "${3:-90}" || return 1
    wait_domain_gone "$1" 30 || return 1
    if ! grep -q '^GUEST-EXIT 0' "$(guest_log "$1")"; then
        echo "linux_guest: $1's command failed: $(grep '^GUEST-EXIT' "$(guest_log "$1")")"
        return 1
    fi
}

net_setup() {
    _mods=/lib/modules/$(uname -r)/kernel
    _err=
    for _m in net/llc/llc net/802/stp net/bridge/bridge drivers/net/xen-netback/xen-netback; do
        insmod "$_mods/$_m.ko" 2>/tmp/insmod.err || _err="$_err insmod $_m: $(cat /tmp/insmod.err);"
    done
    brctl addbr xenbr0 2>>/tmp/insmod.err || _err="$_err brctl addbr xenbr0 failed;"
    ip addr add 10.0.0.1/24 dev xenbr0 || _err="$_err no address on xenbr0;"
    ip link set dev xenbr0 up || _err="$_err xenbr0 not up;"
    if [ -z "$_err" ]; then
        pass "dom0 network: xen-netback loaded, bridge xenbr0 at 10.0.0.1/24"
    else
        fail "dom0 network: xen-netback loaded, bridge xenbr0 at 10.0.0.1/24" "$_err"
    fi
}

net_state() {
    echo "----- dom0 network state -----"
    ip -s link 2>&1
    brctl show 2>&1
    ip neigh 2>&1
    dmesg 2>/dev/null | grep -i -E 'vif|netback|xenbr' | tail -n 20
    echo "-----"
}

uptime_ms() {
    awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

stub_console_clean() {
    _bad=$(tr -d '\r' <"$(guest_log Xenstore)" | grep -E '^\[(WARN|ERROR)\]' | grep -Ev -- "${1:-^$}")
    expect_eq "no unexpected warning or error on the stub's console" "" "$_bad"
}

finish() {
    echo "RESULT: $PASSED passed, $FAILED failed"
    if [ "$FAILED" -ne 0 ]; then
        exit 1
    fi
    if [ "$PASSED" -eq 0 ]; then
        echo "FAIL scenario checked nothing"
        exit 1
    fi
    exit 0
}

# Added for the kernel platform scenarios (tests/boot/platform-*.sh):
#   domain_in_state NAME LETTER     true when `xl list NAME` shows LETTER in its State column
#                                   (r running, b blocked, p paused, s shutdown, c crashed)
#   wait_domain_state NAME LETTER TIMEOUT_S
#                                   wait until domain_in_state holds; returns 0, or 1 after
#                                   TIMEOUT_S (then prints `xl list`)
domain_in_state() {
    xl list "$1" 2>/dev/null | awk -v l="$2" 'NR == 2 && index($5, l) { found = 1 } END { exit !found }'
}

wait_domain_state() {
    if _poll "$3" domain_in_state "$1" "$2"; then
        return 0
    fi
    echo "wait_domain_state: domain $1 not in state '$2' after $3 s:"
    xl list 2>&1 | sed 's/^/    /'
    return 1
}

# Added for many guests at once (tests/boot/stub-many-guests.sh, scripts/bench-guests):
#   guests_at_once NAME COUNT       starts ferrostore guests NAME-1..COUNT (demo tour, 16 MiB,
#                                   poweroff) with one `xl create ... &` each, waits for every
#                                   `xl create`, prints "BENCH NAME <ms> <failed> <retried>" and each
#                                   failure's first libxl error, then waits (120 s at most)
#                                   until every guest is gone. Sets GUESTS_FAILED (how many
#                                   `xl create`s failed) and GUESTS_LEFT (names not gone).
#                                   A create that failed only on libxl's console-tty wait is
#                                   tried once more ("NOTE NAME: <n> xl create retried").
#   spinners_start                  starts two Linux guests spin1, spin2, each with one vCPU
#                                   per pCPU busy in a loop; PASS/FAIL per guest
#   spinners_stop                   destroys them; PASS/FAIL per guest
guests_at_once() {
    _start=$(uptime_ms)
    _i=1
    while [ "$_i" -le "$2" ]; do
        _cfg=$(ferrostore_guest "$1-$_i" demo)
        # libxl gives xenconsoled 10 s to publish a new guest's console tty; with dozens of
        # creates at once on an emulated dom0 it sometimes misses that (the store answered:
        # libxl waits for xenconsoled). Such a create is tried once more, and counted.
        (xl create "$_cfg" >/tmp/"$1-$_i".out 2>&1
            _rc=$?
            if [ $_rc != 0 ] && grep -q 'console tty: timed out' /tmp/"$1-$_i".out; then
                echo retried >/tmp/"$1-$_i".retried
                xl create "$_cfg" >/tmp/"$1-$_i".out 2>&1
                _rc=$?
            fi
            echo $_rc >/tmp/"$1-$_i".rc) &
        _i=$((_i + 1))
    done
    wait
    _created=$(uptime_ms)
    GUESTS_FAILED=0
    _i=1
    while [ "$_i" -le "$2" ]; do
        if [ "$(cat /tmp/"$1-$_i".rc)" != 0 ]; then
            GUESTS_FAILED=$((GUESTS_FAILED + 1))
            grep -m1 'libxl: error' /tmp/"$1-$_i".out | sed "s/^/    $1-$_i: /"
        fi
        _i=$((_i + 1))
    done
    _retried=$(ls /tmp/"$1"-*.retried 2>/dev/null | wc -l)
    [ "$_retried" = 0 ] || echo "NOTE $1: $_retried xl create retried after libxl's console tty wait timed out"
    echo "BENCH $1 $((_created - _start)) $GUESTS_FAILED $_retried"
    GUESTS_LEFT=""
    _i=1
    while [ "$_i" -le "$2" ]; do
        wait_domain_gone "$1-$_i" 120 >/dev/null || GUESTS_LEFT="$GUESTS_LEFT $1-$_i"
        _i=$((_i + 1))
    done
}

spinners_start() {
    _cpus=$(xl info | sed -n 's/^nr_cpus *: *//p')
    _cpus=${_cpus:-2}
    _loops=""
    _i=1
    while [ "$_i" -lt "$_cpus" ]; do
        _loops="$_loops(while :; do :; done) & "
        _i=$((_i + 1))
    done
    for _s in spin1 spin2; do
        cat >/tmp/$_s.cfg <<CFG
name = "$_s"
type = "pv"
kernel = "/ferrostore/guest/vmlinuz"
ramdisk = "/ferrostore/guest/guest-initrd.gz"
memory = 128
vcpus = $_cpus
extra = "console=hvc0 quiet -- ${_loops}while :; do :; done"
on_poweroff = "destroy"
CFG
        check "xl create $_s (spins on $_cpus vCPUs)" xl create /tmp/$_s.cfg
    done
    # Let them reach their loops before timing anything.
    sleep 5
}

spinners_stop() {
    check "xl destroy spin1" xl destroy spin1
    check "xl destroy spin2" xl destroy spin2
}
