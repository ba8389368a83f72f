# Issue 4 §5 (d): a Linux PV guest (xen-config/linux-guest.cfg, the Debian kernel plus the
# guest initrd with tests/boot/guest/xenstore-area.sh as /guest.sh) reads and writes its own
# xenstore area through /dev/xen/xenbus, is refused dom0's private nodes with EACCES and powers
# off; dom0 then sees the guest's writes, `xl destroy`s it, and checks that
# /local/domain/<id> is gone and that its watch on @releaseDomain fired.
# xen-run: --xenstore stub --timeout 300
. /ferrostore/tests/boot/lib.sh

name=linux-guest
log=$(guest_log $name)
cfg=/ferrostore/xen-config/linux-guest.cfg

mkdir -p /tmp/guest-extra
cp /ferrostore/tests/boot/guest/xenstore-area.sh /tmp/guest-extra/guest.sh
(cd /tmp/guest-extra && echo guest.sh | cpio -o -H newc 2>/dev/null | gzip) >/tmp/guest-extra.gz
cat /ferrostore/guest/guest-initrd.gz /tmp/guest-extra.gz >/tmp/linux-guest-initrd.gz

xenstore-watch @releaseDomain >/tmp/release.watch 2>&1 &
watch_pid=$!
if wait_for_marker /tmp/release.watch '^@releaseDomain$' 10; then
    pass "dom0 watch on @releaseDomain registered (initial event)"
else
    fail "dom0 watch on @releaseDomain registered (initial event)"
fi

check "xl create linux-guest.cfg" xl create $cfg
id=$(xl domid $name)
if wait_for_marker "$log" '^GUEST-EXIT ' 120; then
    pass "guest ran its script"
else
    fail "guest ran its script"
fi
out=$(grep -E '^GUEST' "$log" | tr -d '\r')
expect_eq "guest's xenstore session, exact" "GUEST-INIT START
GUEST domid $id
GUEST name $name
GUEST relative-write-read hello-from-guest
GUEST absolute-read abs-value
GUEST list-data absolute greeting
GUEST rm gone
GUEST raw-read-own 2 hello-from-guest
GUEST raw-read-missing 16 ENOENT|
GUEST raw-read-dom0-name 16 EACCES|
GUEST raw-write-dom0 16 EACCES|
GUEST raw-write-root 16 EACCES|
GUEST raw-list-tool 16 EACCES|
GUEST xenstore-read-dom0 refused
GUEST-EXIT 0" "$out"

# The guest powered off (on_poweroff = "preserve"): its area is still there until destroy.
_shut_down() { xl list $name 2>/dev/null | awk 'NR == 2 { exit !($5 ~ /s/) }'; }
if _poll 30 _shut_down; then
    pass "guest shut down and preserved"
else
    fail "guest shut down and preserved" "$(xl list)"
fi
expect_eq "dom0 reads the guest's write" hello-from-guest \
    "$(xenstore-read /local/domain/$id/data/greeting 2>&1)"
before=$(grep -c '^@releaseDomain$' /tmp/release.watch)
expect_eq "@releaseDomain fired at registration and at the guest's poweroff" 2 "$before"

check "xl destroy $name" xl destroy $name
if wait_domain_gone $name 30; then
    pass "domain gone after xl destroy"
else
    fail "domain gone after xl destroy"
fi
_area_gone() { ! xenstore-exists /local/domain/$id; }
if _poll 10 _area_gone; then
    pass "/local/domain/$id is gone"
else
    fail "/local/domain/$id is gone" "$(xenstore-ls /local/domain/$id 2>&1 | head -n 20)"
fi
expect_eq "/local/domain no longer lists $id" "" "$(xenstore-list /local/domain | grep -x "$id")"
_released() { [ "$(grep -c '^@releaseDomain$' /tmp/release.watch)" -gt "$before" ]; }
if _poll 10 _released; then
    pass "@releaseDomain fired after xl destroy ($before events before, $(grep -c '^@releaseDomain$' /tmp/release.watch) after)"
else
    fail "@releaseDomain fired after xl destroy" "$(cat /tmp/release.watch)"
fi
expect_eq "the watch printed nothing but @releaseDomain" "" "$(grep -v '^@releaseDomain$' /tmp/release.watch)"
kill $watch_pid
stub_console_clean
finish
