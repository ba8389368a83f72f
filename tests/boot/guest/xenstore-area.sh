# Runs inside a Linux PV guest as /guest.sh (tests/boot/stub-guest-linux.sh appends it to the
# guest initrd): uses the guest's own xenstore area through /dev/xen/xenbus and checks that
# dom0's private nodes are refused. Prints "GUEST <what> <result>" lines that the dom0
# scenario compares exactly; the exit code is that of the last command (0).

# le32 N: N as 4 little-endian bytes (printf octal escapes; N < 65536 here).
le32() {
    printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\000\\000"
}

# xs_raw TYPE ARG [VALUE]: sends one raw xenstore request (payload "ARG\0" plus VALUE, if
# given) on its own /dev/xen/xenbus handle; prints "<reply type> <payload, NUL shown as |>".
xs_raw() {
    if [ $# -ge 3 ]; then
        len=$((${#2} + 1 + ${#3}))
    else
        len=$((${#2} + 1))
    fi
    {
        le32 "$1"
        le32 7
        le32 0
        le32 $len
        printf '%s\000' "$2"
        [ $# -ge 3 ] && printf '%s' "$3"
    } >/tmp/xs-req
    exec 3<>/dev/xen/xenbus
    cat /tmp/xs-req >&3
    dd bs=4096 count=1 <&3 >/tmp/xs-rsp 2>/dev/null
    exec 3>&-
    echo "$(od -An -tu4 -N4 /tmp/xs-rsp | tr -d ' ') $(tail -c +17 /tmp/xs-rsp | tr '\000' '|')"
}

id=$(xenstore-read domid)
echo "GUEST domid $id"
echo "GUEST name $(xenstore-read name)"
xenstore-write data/greeting hello-from-guest
echo "GUEST relative-write-read $(xenstore-read data/greeting)"
xenstore-write "/local/domain/$id/data/absolute" abs-value
echo "GUEST absolute-read $(xenstore-read "/local/domain/$id/data/absolute")"
# shellcheck disable=SC2046
echo "GUEST list-data" $(xenstore-list data | sort)
xenstore-rm data/absolute
if xenstore-exists data/absolute; then
    echo "GUEST rm still-exists"
else
    echo "GUEST rm gone"
fi
echo "GUEST raw-read-own $(xs_raw 2 data/greeting)"
echo "GUEST raw-read-missing $(xs_raw 2 data/missing)"
echo "GUEST raw-read-dom0-name $(xs_raw 2 /local/domain/0/name)"
echo "GUEST raw-write-dom0 $(xs_raw 11 /local/domain/0/data/evil value)"
echo "GUEST raw-write-root $(xs_raw 11 /evil value)"
echo "GUEST raw-list-tool $(xs_raw 1 /tool)"
if xenstore-read /local/domain/0/name >/dev/null 2>&1; then
    echo "GUEST xenstore-read-dom0 allowed"
else
    echo "GUEST xenstore-read-dom0 refused"
fi
