#!/usr/bin/env bash
# Builds a Debian-stock Linux test guest for the vhost-user validation harness.
#
#   build-guest.sh OUTDIR
#
# Produces OUTDIR/vmlinuz, OUTDIR/initrd.cpio.gz and OUTDIR/VERSIONS (every package and version
# the image was built from; the same list is /etc/vtest-versions inside the initramfs). Everything
# comes from Debian 12 packages (apt-get download + dpkg-deb -x); nothing is compiled.
#
# Reproducible and cached:
# - The versions come from packages.lock beside this script. A locked version the archive (and
#   the .deb cache) no longer has is replaced by the archive's current one, and each such change
#   is printed as a line starting `build-guest: drift:`; so is a package the live dependency graph
#   needs that the lock does not name. UPDATE_LOCK=1 writes the versions used back to the lock.
# - The inputs (this script, guest-init.sh, elf-closure.py, the kernel and every package=version)
#   are hashed; when OUTDIR holds an image of the same hash the script prints `up to date` and
#   does nothing else.
# - Shared libraries are found by elf-closure.py, which resolves DT_NEEDED the way ld.so does
#   (RPATH, RUNPATH, $ORIGIN, ld.so.conf, default directories) inside the staged root only, never
#   against the host's libraries. An unresolved library fails the build with one line naming the
#   object, the library and the package that should provide it.
#
# Also installs the host tools the run-*.sh scripts need (qemu-system-x86, qemu-utils; Debian 12
# ships qemu-storage-daemon in qemu-system-common, which qemu-system-x86 pulls in).
#
# Environment:
#   KERNEL_PKG   kernel image package (default: the lock's, else what linux-image-cloud-amd64 depends on)
#   DEBS_DIR     the .deb cache (default OUTDIR/debs); several OUTDIRs may share one
#   GUEST_LOCK   the lock file to read (default packages.lock beside this script)
#   UPDATE_LOCK=1        write the versions used into packages.lock
#   SKIP_HOST_INSTALL=1  do not apt-get install the host tools
set -euo pipefail

OUT=${1:?usage: build-guest.sh OUTDIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOCK=${GUEST_LOCK:-$HERE/packages.lock}
RESOLVER=$HERE/elf-closure.py
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DEBS=${DEBS_DIR:-$OUT/debs}
STAGE=$OUT/stage
ROOT=$OUT/root
mkdir -p "$DEBS"

log() { echo "build-guest: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get)"
command -v python3 >/dev/null || die "python3 is needed for elf-closure.py (package python3)"

apt_updated=0
apt_update_once() {
    if [ $apt_updated = 0 ]; then
        log "apt-get update"
        apt-get update -qq || die "apt-get update failed"
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
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            qemu-system-x86 qemu-utils >/dev/null || die "apt-get install qemu-system-x86 qemu-utils failed"
    fi
fi

# ---- the lock -------------------------------------------------------------------------------
declare -A LOCKED=()
if [ -f "$LOCK" ]; then
    while read -r name version; do
        case $name in ''|'#'*) continue ;; esac
        LOCKED[$name]=$version
    done < "$LOCK"
fi

# deb_file NAME VERSION: the cached .deb of that version, if any (apt-get download writes an
# epoch's colon as %3a).
deb_file() {
    local f
    for f in "$DEBS/${1}_${2//:/%3a}_"*.deb; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

# ---- which packages -------------------------------------------------------------------------
TOOLS="busybox-static fio iperf3 util-linux"
resolve_kernel() {
    local locked_kernel="" n
    for n in "${!LOCKED[@]}"; do case $n in linux-image-*) locked_kernel=$n ;; esac; done
    if [ -n "${KERNEL_PKG:-}" ]; then
        echo "$KERNEL_PKG"
    elif [ -n "$locked_kernel" ] && { deb_file "$locked_kernel" "${LOCKED[$locked_kernel]}" >/dev/null \
            || apt-cache show "$locked_kernel" >/dev/null 2>&1; }; then
        echo "$locked_kernel"
    else
        n=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
        [ -n "$locked_kernel" ] && log "drift: kernel $locked_kernel is no longer in the archive: taking $n"
        echo "$n"
    fi
}

# choose_versions: fills PKGS (names, sorted) and VERSION[name] from the lock where the archive
# or the cache still has the locked version, else the archive's candidate (with a drift line).
declare -A VERSION=()
PKGS=()
choose_versions() {
    KERNEL_PKG=$(resolve_kernel)
    [ -n "$KERNEL_PKG" ] || die "cannot resolve the kernel package (package linux-image-cloud-amd64)"
    # The tools' shared libraries come from their whole Depends closure, whatever the packages are
    # called (zlib1g ships libz.so.1). Only the files that elf-closure.py resolves go into the
    # initramfs, so over-fetching costs download cache only. Perl and Python are script
    # interpreters for fio's helper scripts; nothing in the guest needs them.
    mapfile -t PKGS < <({
        echo "$KERNEL_PKG"
        for t in $TOOLS; do echo "$t"; done
        apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances $TOOLS \
            | grep -v '^ ' | grep -v '^<' | grep -vE '^(lib)?(perl|python)'
    } | LC_ALL=C sort -u)

    # Every version the archive offers (madison) and each candidate (policy), in one call each.
    declare -A offered=() candidate=()
    local name version rest
    while IFS='|' read -r name version rest; do
        name=${name// /}; version=${version// /}
        [ -n "$name" ] && offered["$name=$version"]=1
    done < <(apt-cache madison "${PKGS[@]}" 2>/dev/null)
    while read -r name version; do
        candidate[$name]=$version
    done < <(apt-cache policy "${PKGS[@]}" 2>/dev/null \
        | awk '/^[^ ].*:$/ { name = substr($0, 1, length($0) - 1) } /^  Candidate:/ { print name, $2 }')

    VERSION=()
    local drifted=0 pinned=0
    for name in "${PKGS[@]}"; do
        local want=${LOCKED[$name]:-}
        if [ -n "$want" ] && { [ -n "${offered["$name=$want"]:-}" ] || deb_file "$name" "$want" >/dev/null; }; then
            VERSION[$name]=$want; pinned=$((pinned + 1))
            continue
        fi
        local now=${candidate[$name]:-}
        [ -n "$now" ] && [ "$now" != "(none)" ] || die "package $name: the archive has no installable version"
        if [ -n "$want" ]; then
            log "drift: $name $want is no longer in the archive: taking $now"
        else
            log "drift: $name is not in the lock: taking $now"
        fi
        VERSION[$name]=$now; drifted=$((drifted + 1))
    done
    log "versions: $pinned as locked, $drifted drifted (kernel $KERNEL_PKG)"
}
choose_versions

# The inputs' hash: the scripts that make the image and every package version in it.
inputs_hash() {
    {
        cat "$HERE/build-guest.sh" "$HERE/guest-init.sh" "$RESOLVER"
        for name in "${PKGS[@]}"; do echo "$name ${VERSION[$name]}"; done
    } | sha256sum | cut -c1-16
}
HASH=$(inputs_hash)
if [ -f "$OUT/.inputs" ] && [ "$(cat "$OUT/.inputs")" = "$HASH" ] && [ -f "$OUT/vmlinuz" ] \
    && [ -f "$OUT/initrd.cpio.gz" ] && [ -f "$OUT/VERSIONS" ]; then
    log "up to date: $OUT (inputs $HASH)"
    exit 0
fi
rm -f "$OUT/.inputs"

# ---- download (cached) ----------------------------------------------------------------------
download() {
    # apt drops privileges to _apt for downloads; let it write there.
    chmod 0777 "$DEBS"
    (cd "$DEBS" && apt-get download -qq "$@" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
}
missing_debs() {
    local name
    for name in "${PKGS[@]}"; do deb_file "$name" "${VERSION[$name]}" >/dev/null || echo "$name=${VERSION[$name]}"; done
}
mapfile -t missing < <(missing_debs)
if [ ${#missing[@]} -gt 0 ]; then
    log "downloading ${#missing[@]} packages"
    download "${missing[@]}"
    mapfile -t missing < <(missing_debs)
    # Stale package lists name versions the mirror no longer has: update once, choose again, retry.
    if [ ${#missing[@]} -gt 0 ]; then
        apt_update_once
        choose_versions
        HASH=$(inputs_hash)
        mapfile -t missing < <(missing_debs)
        [ ${#missing[@]} -gt 0 ] && download "${missing[@]}"
        mapfile -t missing < <(missing_debs)
    fi
    for m in "${missing[@]}"; do log "download failed: package ${m%%=*} version ${m#*=}"; done
    [ ${#missing[@]} -eq 0 ] || exit 1
fi

# ---- extract --------------------------------------------------------------------------------
# The stage holds exactly the chosen .deb files; OWNERS maps every staged path to its package,
# for elf-closure.py's messages.
OWNERS=$STAGE/.owners
debs_sig=$(for name in "${PKGS[@]}"; do echo "$name ${VERSION[$name]}"; done | sha256sum | cut -c1-16)
if [ ! -f "$STAGE/.sig" ] || [ "$(cat "$STAGE/.sig")" != "$debs_sig" ]; then
    log "extracting ${#PKGS[@]} packages into $STAGE"
    rm -rf "$STAGE"
    mkdir -p "$STAGE"
    tarball=$OUT/.fsys.tar
    for name in "${PKGS[@]}"; do
        dpkg-deb --fsys-tarfile "$(deb_file "$name" "${VERSION[$name]}")" > "$tarball"
        tar -xf "$tarball" -C "$STAGE"
        tar -tf "$tarball" | sed -n "s|^\./\(.*[^/]\)$|/\1\t$name|p" >> "$OWNERS"
    done
    rm -f "$tarball"
    echo "$debs_sig" > "$STAGE/.sig"
fi

BB=$STAGE/bin/busybox
[ -x "$BB" ] || die "no /bin/busybox in the stage (package busybox-static)"
KVER=${KERNEL_PKG#linux-image-}
MODDIR=$STAGE/lib/modules/$KVER
[ -d "$MODDIR" ] || die "no modules for $KVER in the stage (package $KERNEL_PKG)"

# ---- initramfs root -------------------------------------------------------------------------
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,run,etc,mnt,lib/modules}
cp "$BB" "$ROOT/bin/busybox"
for a in $("$BB" --list); do
    [ "$a" = busybox ] && continue
    ln -sf busybox "$ROOT/bin/$a"
done

# The dynamic executables (stage path, guest path) and, through elf-closure.py, every library and
# loader they need, each copied to the guest path where ld.so will look for it.
EXES=(/usr/bin/fio:/usr/bin/fio /usr/bin/iperf3:/usr/bin/iperf3 /sbin/blkdiscard:/usr/sbin/blkdiscard)
sources=()
for pair in "${EXES[@]}"; do
    install -D -m 0755 "$STAGE${pair%%:*}" "$ROOT${pair#*:}"
    sources+=("${pair%%:*}")
done
closure=$(python3 "$RESOLVER" --root "$STAGE" --owners "$OWNERS" "${sources[@]}") \
    || die "the shared-library closure of ${sources[*]} is incomplete (see the elf-closure lines above)"
nlibs=0
while IFS=$'\t' read -r _ found real; do
    install -D -m 0755 "$STAGE$real" "$ROOT$found"
    nlibs=$((nlibs + 1))
done <<<"$closure"
log "libraries: $nlibs resolved for ${sources[*]}"
# Directories named by the stage's ld.so.conf reach the guest's loader only through
# /etc/ld.so.cache: give the guest the same configuration and build its cache.
if [ -e "$STAGE/etc/ld.so.conf" ]; then
    cp -a "$STAGE/etc/ld.so.conf" "$ROOT/etc/"
    [ -d "$STAGE/etc/ld.so.conf.d" ] && cp -a "$STAGE/etc/ld.so.conf.d" "$ROOT/etc/"
    ldconfig -r "$ROOT" || die "ldconfig -r $ROOT failed (package libc-bin)"
fi

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
    [ -n "${MODPATH[$m]:-}" ] || die "module $m not in $KERNEL_PKG"
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

# VERSIONS: what the image was built from, inside it and beside it.
{
    echo "# build-guest.sh inputs $HASH, kernel $KERNEL_PKG"
    for name in "${PKGS[@]}"; do echo "$name ${VERSION[$name]}"; done
} > "$OUT/VERSIONS.tmp"
cp "$OUT/VERSIONS.tmp" "$ROOT/etc/vtest-versions"

# ---- pack -----------------------------------------------------------------------------------
cp "$STAGE/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | "$BB" cpio -o -H newc 2>/dev/null) \
    | gzip -6 -n > "$OUT/initrd.cpio.gz.tmp"
mv "$OUT/initrd.cpio.gz.tmp" "$OUT/initrd.cpio.gz"
mv "$OUT/VERSIONS.tmp" "$OUT/VERSIONS"
log "kernel $KVER -> $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") bytes)"
log "initramfs -> $OUT/initrd.cpio.gz ($(stat -c %s "$OUT/initrd.cpio.gz") bytes, root $(du -sh "$ROOT" | cut -f1))"
# The initramfs tree is packed; nothing reads it again.
rm -rf "$ROOT"

if [ "${UPDATE_LOCK:-0}" = 1 ]; then
    {
        echo "# Package versions of the Linux test guest (build-guest.sh). Regenerate with"
        echo "#   UPDATE_LOCK=1 bash samples/linux-guest/build-guest.sh DIR"
        for name in "${PKGS[@]}"; do echo "$name ${VERSION[$name]}"; done
    } > "$LOCK"
    log "wrote $LOCK"
fi
# Last: an image counts as built only once everything above succeeded.
echo "$HASH" > "$OUT/.inputs"
log "built: $OUT (inputs $HASH)"
