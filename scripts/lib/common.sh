# Shared helpers for the host-side project scripts (sourced, never run).
# Owns: the repo/cache locations, error reporting, and the list of Debian packages
# the project needs, so scripts/setup and scripts/xen-run agree on them.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${FERROSTORE_CACHE:-$HOME/.cache/ferrostore}
DEBS=$CACHE/debs
PKGS=$CACHE/pkgs
ENV_FILE=$CACHE/env.sh

# rustup's cargo lives here on the project's machines; non-login shells may lack it.
if [ -d "$HOME/.cargo/bin" ]; then
    PATH=$HOME/.cargo/bin:$PATH
fi

# Packages installed on the host (dom0's userland is copied from them).
APT_PACKAGES="qemu-system-x86 xen-utils-4.17 xenstore-utils libxen-dev python3-pyxs
busybox-static rustc-web rust-web-src rust-web-clippy cpio gcc binutils gzip"

# Packages only downloaded and unpacked into $PKGS: the hypervisor and the Linux kernel
# that linux-image-amd64 depends on (looked up by scripts/setup).
XEN_PACKAGE=xen-hypervisor-4.17-amd64

die() {
    echo "${0##*/}: error: $*" >&2
    exit 1
}

note() {
    echo "${0##*/}: $*" >&2
}
