#!/bin/sh
# Builds the freestanding test guest: samples/guest/build.sh OUTDIR -> OUTDIR/guest.elf
# Needs gcc and binutils only. Fails on the first error.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
obj="$out/guest-obj"

# Up to date when guest.elf is newer than every file here (sources, linker script, this script).
if [ -f "$out/guest.elf" ] && [ -z "$(find "$src" -type f -newer "$out/guest.elf")" ]; then
    exit 0
fi
mkdir -p "$obj"

CC=${CC:-gcc}
CFLAGS="-m64 -ffreestanding -nostdlib -nostdinc -static -fno-pic -fno-pie -fno-stack-protector \
-mgeneral-regs-only -mno-sse -mno-mmx -mno-red-zone -mcmodel=small -fno-asynchronous-unwind-tables \
-fno-builtin -O2 -Wall -Wextra -std=gnu11"
# No -Werror: a newer gcc's new warnings must not break `dotnet run` on a fresh machine.

objs=""
for f in "$src"/*.c "$src"/*.S; do
    o="$obj/$(basename "$f").o"
    $CC $CFLAGS -c "$f" -o "$o"
    objs="$objs $o"
done
# shellcheck disable=SC2086
$CC $CFLAGS -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -no-pie \
    -T "$src/linker.ld" -o "$out/guest.elf.tmp" $objs -lgcc
mv "$out/guest.elf.tmp" "$out/guest.elf"
