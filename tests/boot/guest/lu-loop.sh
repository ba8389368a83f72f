# Runs inside a Linux PV guest as /guest.sh (tests/boot/stub-live-update.sh appends it to the
# guest initrd): until dom0 writes data/lu/stop, writes a counter to data/lu/n through
# /dev/xen/xenbus and reads it back, while the xenstore stub is live-updated. Prints
# "GUEST lu-loop <pairs> pairs" and exits 0, or "GUEST lu-loop FAILED <what>" and exits 1.
i=0
while ! xenstore-read data/lu/stop >/dev/null 2>&1; do
    if ! xenstore-write data/lu/n "$i"; then
        echo "GUEST lu-loop FAILED write $i"
        exit 1
    fi
    v=$(xenstore-read data/lu/n)
    if [ "$v" != "$i" ]; then
        echo "GUEST lu-loop FAILED read $i got '$v'"
        exit 1
    fi
    i=$((i + 1))
done
echo "GUEST lu-loop $i pairs"
