# Shared helpers for the host-side project scripts (sourced, never run).
# Owns: the repo/cache locations, error reporting, the Xen versions the boot harness runs
# (each a Xen + Debian dom0 stack cached by scripts/setup) and the lists of Debian packages
# the project needs, so scripts/setup, scripts/xen-run and scripts/test agree on them.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${FERROSTORE_CACHE:-$HOME/.cache/ferrostore}
DEBS=$CACHE/debs
PKGS=$CACHE/pkgs

# The Xen versions of the boot harness: 4.17 with Debian 12's packages (the host's), 4.20 with
# Debian 13's (downloaded by scripts/lib/stack-4.20). The default is the newest.
XEN_VERSIONS="4.17 4.20"
DEFAULT_XEN=4.20

# env_file VERSION: prints the path of the file scripts/setup writes for that version's stack
# (FERRO_XEN_ELF, FERRO_VMLINUZ, ...), read by scripts/xen-run and scripts/lib/dom0-initramfs.
env_file() {
    echo "$CACHE/env-$1.sh"
}

# check_xen_version VERSION: dies unless VERSION is one of XEN_VERSIONS.
check_xen_version() {
    case " $XEN_VERSIONS " in
    *" $1 "*) ;;
    *) die "--xen must be one of: $XEN_VERSIONS (not '$1')" ;;
    esac
}

# rustup's cargo lives here on the project's machines; non-login shells may lack it.
if [ -d "$HOME/.cargo/bin" ]; then
    PATH=$HOME/.cargo/bin:$PATH
fi

# Packages installed on the host (dom0's userland is copied from them).
APT_PACKAGES="qemu-system-x86 xen-utils-4.17 xenstore-utils libxen-dev python3-pyxs
busybox-static util-linux rustc-web rust-web-src rust-web-clippy cpio gcc binutils gzip"

# Packages only downloaded and unpacked into $PKGS for the 4.17 stack: the hypervisor and the
# Linux kernel that linux-image-amd64 depends on (looked up by scripts/setup).
XEN_PACKAGE=xen-hypervisor-4.17-amd64

# The 4.20 stack: Debian 13 packages downloaded (never installed) and unpacked together into
# one tree, plus the libraries their programs need (scripts/lib/stack-4.20).
TRIXIE_PACKAGES="xen-hypervisor-4.20-amd64 xen-utils-4.20 xen-utils-common xenstore-utils
busybox-static util-linux"

die() {
    echo "${0##*/}: error: $*" >&2
    exit 1
}

note() {
    echo "${0##*/}: $*" >&2
}
