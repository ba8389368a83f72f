# xen-run: --xenstore none --timeout 90
# Fixture for scripts/test's "xen-run exit code" stage: xen-run must exit 7 and print
# "XEN-RUN EXIT 7". Not a scenario of its own (it fails on purpose).
echo "fixture: exiting with 7"
exit 7
