# Harness self-test: dom0 is up with the C xenstored, xen-init-dom0 and xenconsoled.
. /ferrostore/tests/boot/lib.sh

expect_eq "xenstored wrote its pid file" "$(pidof xenstored)" "$(cat /var/run/xen/xenstored.pid)"
expect_eq "dom0's name in xenstore" "Domain-0" "$(xenstore-read /local/domain/0/name)"
expect_eq "dom0's domid in xenstore" "0" "$(xenstore-read /local/domain/0/domid)"
expect_match "xenstore-ls / lists /local/domain/0" '^ *0 = ""' "$(xenstore-ls /local/domain)"
expect_match "xl list shows Domain-0 as domid 0" '^Domain-0 +0 ' "$(xl list)"
check "xenconsoled is running" pidof xenconsoled

start=$(uptime_ms)
if out=$(test-xenstore 2>&1); then
    pass "test-xenstore against the C xenstored ($(($(uptime_ms) - start)) ms)"
else
    fail "test-xenstore against the C xenstored" "$out"
fi
finish
