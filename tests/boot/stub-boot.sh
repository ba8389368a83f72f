# Stub domain, test (a): ferrostore started by init-xenstore-domain serves dom0 —
# xen-init-dom0 completed (dom0-init checks it), the tree is there, `xl list` shows the
# Xenstore domain, and xenstore-control (memreport, quota) answers from the stub. On Xen
# 4.19+ init-xenstore-domain also gives the stub a 9pfs device served by xen-9pfsd: its nodes
# are there, the stub's frontend connects, and its log file appears in dom0's
# /var/lib/xen/xenstore with the boot's lines; the stub logs no warning about it.
# xen-run: --xenstore stub --timeout 240
. /ferrostore/tests/boot/lib.sh

stub=$(sed -n 's/^domid://p' /var/run/xen/xenstored.pid)
expect_match "init-xenstore-domain recorded the stub's domid" '^[1-9][0-9]*$' "$stub"
expect_eq "/tool/xenstored/domid names the stub" "$stub" "$(xenstore-read /tool/xenstored/domid)"
expect_eq "dom0's name in xenstore (xen-init-dom0)" "Domain-0" "$(xenstore-read /local/domain/0/name)"
expect_eq "dom0's domid in xenstore" "0" "$(xenstore-read /local/domain/0/domid)"
expect_eq "the stub's name in xenstore" "Xenstore" "$(xenstore-read /local/domain/$stub/name)"
ls_out=$(xenstore-ls /local/domain)
expect_match "xenstore-ls lists dom0" '^0 = ""' "$ls_out"
expect_match "xenstore-ls lists the stub" "^$stub = \"\"" "$ls_out"
expect_match "xl list shows Domain-0" '^Domain-0 +0 ' "$(xl list)"
expect_match "xl list shows the Xenstore domain" "^Xenstore +$stub " "$(xl list)"
check "xenconsoled is running" pidof xenconsoled

check "write" xenstore-write /test/a hello
expect_eq "read back" "hello" "$(xenstore-read /test/a)"
check "rm" xenstore-rm /test
expect_eq "gone after rm" "" "$(xenstore-read /test/a 2>/dev/null)"
expect_match "xenstore-control memreport answers" '^domain 0: [0-9]+ nodes, [0-9]+ bytes' \
    "$(xenstore-control memreport 2>&1)"
log=$(guest_log Xenstore)
if wait_for_marker "$log" '^xenstored: serving dom0 \(event channel [0-9]+\)' 10; then
    pass "stub console reached xenconsoled with the serving marker"
else
    fail "stub console reached xenconsoled with the serving marker"
fi
# The stub caps the per-domain memory quota at a quarter of its heap, bounds what all domains
# together are charged by half of it, and logs both values.
quotas=$(tr -d '\r' <"$log" | sed -n 's/^\[INFO\] xenstored: quotas: memory \([0-9]*\) B (all domains \([0-9]*\) B), .*/\1 \2/p')
expect_match "the stub logged its memory quotas" '^[1-9][0-9]* [1-9][0-9]*$' "$quotas"
expect_match "xenstore-control quota reports that memory quota" \
    "^memory +: +${quotas% *} " "$(xenstore-control quota 2>&1)"
expect_match "memreport shows the bound on all domains" \
    "^total: [0-9]+ bytes charged, limit ${quotas#* }\$" "$(xenstore-control memreport 2>&1)"
if command -v xen-9pfsd >/dev/null; then
    expect_eq "xen-9pfsd announced itself" running "$(xenstore-read /local/domain/0/libxl/xen-9pfs/state)"
    fe=/local/domain/$stub/device/9pfs/0
    be=/local/domain/0/backend/xen_9pfs/$stub/0
    expect_eq "the stub's 9pfs device: frontend nodes" "$be|0|Xen" \
        "$(xenstore-read $fe/backend $fe/backend-id $fe/tag | tr '\n' '|' | sed 's/|$//')"
    expect_eq "the stub's 9pfs device: backend (dom0's /var/lib/xen/xenstore)" \
        "$fe|$stub|/var/lib/xen/xenstore|none" \
        "$(xenstore-read $be/frontend $be/frontend-id $be/path $be/security_model | tr '\n' '|' | sed 's/|$//')"
    # The stub's frontend connects (transport version 1, one ring) and writes its log there.
    file=$(stub_log)
    if wait_for_marker "$file" '\[INFO\] xenstored: log: 9pfs device connected \(backend dom0\)$' 20; then
        pass "the stub's log file is on dom0's disk"
    else
        fail "the stub's log file is on dom0's disk" "$(ls -l /var/lib/xen/xenstore 2>&1)"
    fi
    expect_eq "both ends of the 9pfs device are Connected" "4|4|1|1" \
        "$(xenstore-read $fe/state $be/state $fe/version $fe/num-rings | tr '\n' '|' | sed 's/|$//')"
    expect_match "the file starts with the boot's lines, UTC-stamped" \
        '^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z \[INFO\] command line "--event [0-9]+' \
        "$(head -n 1 "$file")"
    expect_match "the file has the quotas line" '\[INFO\] xenstored: quotas: memory ' "$(cat "$file")"
    expect_match "the console says where the log went" \
        '^xenstored: log: writing ferrostore.log on the 9pfs device' "$(tr -d '\r' <"$log")"
    expect_range "the log file is under its 1 MiB cap" 1 1048576 "$(wc -c <"$file")"
fi
check "the stub still serves dom0" xenstore-write /test/b ok
stub_console_clean
finish
