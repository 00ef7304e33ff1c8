#!/usr/bin/env bash
# Builds a Debian-stock Linux test guest for the vhost-user validation harness.
#
#   build-guest.sh OUTDIR
#
# Produces OUTDIR/vmlinuz and OUTDIR/initrd.cpio.gz. Everything comes from Debian 12 packages
# (apt-get download + dpkg-deb -x); nothing is compiled. The .deb files are cached in
# OUTDIR/debs, so a rerun only repacks the initramfs (a second or two).
#
# Also installs the host tools the run-*.sh scripts need (qemu-system-x86, qemu-utils; Debian 12
# ships qemu-storage-daemon in qemu-system-common, which qemu-system-x86 pulls in).
#
# Environment:
#   KERNEL_PKG   kernel image package (default: what linux-image-cloud-amd64 depends on)
#   SKIP_HOST_INSTALL=1  do not apt-get install the host tools
set -euo pipefail

OUT=${1:?usage: build-guest.sh OUTDIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DEBS=$OUT/debs
STAGE=$OUT/stage
ROOT=$OUT/root
mkdir -p "$DEBS"

log() { echo "build-guest: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (apt-get)"; exit 1; }

apt_updated=0
apt_update_once() {
    if [ $apt_updated = 0 ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
}
# apt-cache knows nothing until the first update on a fresh machine.
if ! apt-cache show busybox-static >/dev/null 2>&1; then apt_update_once; fi

# ---- host tools -----------------------------------------------------------------------------
if [ "${SKIP_HOST_INSTALL:-0}" != 1 ]; then
    if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-storage-daemon >/dev/null \
        || ! command -v qemu-img >/dev/null; then
        apt_update_once
        log "installing qemu-system-x86 qemu-utils"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 qemu-utils >/dev/null
    fi
fi

# ---- which packages -------------------------------------------------------------------------
if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$KERNEL_PKG" ] || { log "cannot resolve the kernel package"; exit 1; }
KVER=${KERNEL_PKG#linux-image-}
TOOLS="busybox-static fio iperf3 util-linux"

# The tools' shared libraries: every lib* package in their Depends closure. Only the .so files
# that the dynamic loader actually resolves go into the initramfs (see copy_elf below), so
# over-fetching here costs download cache only. Perl and Python are script interpreters for
# fio's helper scripts; nothing in the guest needs them.
closure_file=$DEBS/.closure
if [ ! -s "$closure_file" ] || [ "$(head -1 "$closure_file")" != "# $KERNEL_PKG $TOOLS" ]; then
    {
        echo "# $KERNEL_PKG $TOOLS"
        echo "$KERNEL_PKG"
        for t in $TOOLS; do echo "$t"; done
        apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances $TOOLS \
            | grep -v '^ ' | grep -E '^lib' | grep -vE '^lib(perl|python)' | sort -u
    } > "$closure_file.tmp"
    mv "$closure_file.tmp" "$closure_file"
fi
PKGS=$(grep -v '^#' "$closure_file")

# ---- download (cached) ----------------------------------------------------------------------
missing=()
for p in $PKGS; do
    ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
done
download() {
    # apt drops privileges to _apt for downloads; let it write there.
    chmod 0777 "$DEBS"
    (cd "$DEBS" && apt-get download -qq "$@" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
}
if [ ${#missing[@]} -gt 0 ]; then
    log "downloading ${#missing[@]} packages"
    download "${missing[@]}"
    still=()
    for p in "${missing[@]}"; do ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || still+=("$p"); done
    # Stale package lists name versions the mirror no longer has: update once and retry.
    if [ ${#still[@]} -gt 0 ]; then apt_update_once; download "${still[@]}"; fi
    for p in "${missing[@]}"; do
        ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || { log "download failed: $p"; exit 1; }
    done
fi

# ---- extract --------------------------------------------------------------------------------
# Re-extract when the set of .deb files changed.
debs_sig=$(cd "$DEBS" && ls -1 ./*.deb | md5sum | cut -d' ' -f1)
if [ ! -f "$STAGE/.sig" ] || [ "$(cat "$STAGE/.sig")" != "$debs_sig" ]; then
    log "extracting into $STAGE"
    rm -rf "$STAGE"
    mkdir -p "$STAGE"
    for p in $PKGS; do
        for d in "$DEBS/${p}_"*.deb; do dpkg-deb -x "$d" "$STAGE"; done
    done
    echo "$debs_sig" > "$STAGE/.sig"
fi

BB=$STAGE/bin/busybox
[ -x "$BB" ] || { log "no busybox in stage"; exit 1; }
MODDIR=$STAGE/lib/modules/$KVER
[ -d "$MODDIR" ] || { log "no modules for $KVER in stage"; exit 1; }

# ---- initramfs root -------------------------------------------------------------------------
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,run,etc,mnt,lib/modules}
cp "$BB" "$ROOT/bin/busybox"
for a in $("$BB" --list); do
    [ "$a" = busybox ] && continue
    ln -sf busybox "$ROOT/bin/$a"
done

# Library search path inside the stage, for resolving NEEDED entries.
LIBPATH=$STAGE/lib/x86_64-linux-gnu:$STAGE/usr/lib/x86_64-linux-gnu:$STAGE/lib:$STAGE/usr/lib
LDSO=$STAGE/lib64/ld-linux-x86-64.so.2
[ -e "$LDSO" ] || LDSO=$STAGE/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2

# copy_elf SRC DEST_IN_ROOT: copy a dynamic executable and every library it resolves to.
copy_elf() {
    local src=$1 dst=$2 line lib
    install -D -m 0755 "$src" "$ROOT$dst"
    local listing
    listing=$("$LDSO" --library-path "$LIBPATH" --list "$src") || { log "ld.so --list failed for $src"; exit 1; }
    if grep -q 'not found' <<<"$listing"; then
        log "unresolved libraries for $src:"; grep 'not found' <<<"$listing" >&2; exit 1
    fi
    while read -r line; do
        lib=$(awk '/=>/ {print $3}' <<<"$line")
        [ -n "$lib" ] || continue
        local name=${line%% *}
        case $name in /*) continue ;; esac   # the loader itself, copied separately
        # Place each library where the guest's loader looks by default.
        install -D -m 0755 "$(realpath "$lib")" "$ROOT/lib/x86_64-linux-gnu/$name"
    done <<<"$listing"
}
install -D -m 0755 "$(realpath "$LDSO")" "$ROOT/lib64/ld-linux-x86-64.so.2"
copy_elf "$STAGE/usr/bin/fio" /usr/bin/fio
copy_elf "$STAGE/usr/bin/iperf3" /usr/bin/iperf3
copy_elf "$STAGE/sbin/blkdiscard" /usr/sbin/blkdiscard
# iperf3's code lives in libiperf; copy_elf found it through NEEDED.

# Kernel modules, with their dependencies from the modules' own "depends=" in .modinfo, in an
# order where every module follows what it depends on.
WANT="virtio_ring virtio virtio_mmio virtio_pci virtio_blk virtio_net"
declare -A MODPATH=()
while IFS= read -r -d '' f; do
    n=$(basename "$f" .ko); MODPATH[${n//-/_}]=$f
done < <(find "$MODDIR/kernel" -name '*.ko' -print0)
declare -A DONE=()
ORDER=()
add_mod() {
    local m=${1//-/_} deps d
    [ -n "${DONE[$m]:-}" ] && return
    [ -n "${MODPATH[$m]:-}" ] || { log "module $m not in $KERNEL_PKG"; exit 1; }
    DONE[$m]=1
    deps=$(tr '\0' '\n' < "${MODPATH[$m]}" | grep -a '^depends=' | head -1 | cut -d= -f2 | tr ',' ' ')
    for d in $deps; do add_mod "$d"; done
    ORDER+=("$m")
}
for m in $WANT; do add_mod "$m"; done
: > "$ROOT/etc/modules.order"
for m in "${ORDER[@]}"; do
    cp "${MODPATH[$m]}" "$ROOT/lib/modules/$m.ko"
    echo "$m" >> "$ROOT/etc/modules.order"
done
log "modules: ${ORDER[*]}"

cp "$HERE/guest-init.sh" "$ROOT/init"
chmod 0755 "$ROOT/init"
echo "$KVER" > "$ROOT/etc/vtest-kernel"
echo "root:x:0:0:root:/:/bin/sh" > "$ROOT/etc/passwd"
echo "root:x:0:" > "$ROOT/etc/group"

# ---- pack -----------------------------------------------------------------------------------
cp "$STAGE/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | "$BB" cpio -o -H newc 2>/dev/null) \
    | gzip -6 -n > "$OUT/initrd.cpio.gz.tmp"
mv "$OUT/initrd.cpio.gz.tmp" "$OUT/initrd.cpio.gz"
log "kernel $KVER -> $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") bytes)"
log "initramfs -> $OUT/initrd.cpio.gz ($(stat -c %s "$OUT/initrd.cpio.gz") bytes, root $(du -sh "$ROOT" | cut -f1))"
