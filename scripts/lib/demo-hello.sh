# dom0 scenario of scripts/demo: starts the demo kernel of xen-config/hello.cfg with xl and
# waits for it to finish; xen-run then prints its console log.
. /ferrostore/tests/boot/lib.sh

cfg=/ferrostore/xen-config/hello.cfg
name=$(sed -n 's/^[[:space:]]*name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$cfg")
[ -n "$name" ] || { fail "$cfg has a name = \"...\" line"; finish; }
echo "DEMO: xl create $cfg (domain \"$name\")"
check "xl create $cfg" xl create "$cfg"
echo "DEMO: xl list right after the create:"
xl list
if wait_domain_gone "$name" 30; then
    pass "$name ran and shut itself down"
else
    fail "$name shut itself down within 30 s" "$(xl list)"
    xl destroy "$name"
fi
if [ -s "$(guest_log "$name")" ]; then
    pass "$name wrote to its console"
else
    fail "$name wrote to its console" "$(guest_log "$name") is empty"
fi
finish
