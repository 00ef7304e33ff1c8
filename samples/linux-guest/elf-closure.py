#!/usr/bin/env python3
"""Static ELF dependency closure inside a staged root, the way glibc 2.36's ld.so (Debian x86_64)
would find the libraries at run time in the guest.

    elf-closure.py --root STAGE [--owners FILE] OBJECT...

OBJECT is a guest path (as seen inside the root). Prints, tab-separated, one line per library or
interpreter: NAME (the DT_NEEDED name or PT_INTERP path), FOUND (the guest path ld.so opens) and
REAL (the guest path of the file once symlinks are resolved): the caller copies REAL to FOUND.
Unresolved names: one line each on stderr, exit 1. Usage errors, or an OBJECT missing or not
ELF: exit 2.

Only the root is read: the host's files are never looked at and nothing is executed (apart from
`apt-cache show` for a package hint). Each OBJECT is resolved as its own ld.so run: its own
"already loaded" set, its own loader chain.
"""

import argparse
import functools
import glob
import os
import re
import shutil
import struct
import subprocess
import sys
from collections import deque

# ld.so's system search path: what `/lib64/ld-linux-x86-64.so.2 --help` prints on Debian 12.
DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"]
# Dynamic string tokens. Debian's glibc expands $LIB to "lib/x86_64-linux-gnu" (checked with
# LD_DEBUG=libs on an RPATH of /x/$LIB), $PLATFORM to AT_PLATFORM, "x86_64" here.
DST = {"ORIGIN": None, "LIB": "lib/x86_64-linux-gnu", "PLATFORM": "x86_64"}
DST_RE = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?=/|$))")

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
DT_FLAGS_1, DF_1_NODEFLIB = 0x6FFFFFFB, 0x800
EM_X86_64 = 62


class Invalid(Exception):
    """A file ld.so refuses outright ("invalid ELF header", "file too short"): fatal, not skipped."""


class Root:
    """Paths inside the stage. Guest paths are absolute strings; symlinks are followed component
    by component, absolute targets re-rooted, and ".." never climbs above the root."""

    def __init__(self, host_dir):
        self.host_dir = os.path.abspath(host_dir)

    def host(self, guest):
        return self.host_dir + guest

    def resolve(self, guest):
        """The symlink-free guest path of `guest`, or None if it does not exist (or loops)."""
        todo = [c for c in guest.split("/") if c][::-1]  # a stack: next component last
        done, hops = [], 0
        while todo:
            comp = todo.pop()
            if comp == ".":
                continue
            if comp == "..":
                if done:
                    done.pop()
                continue
            path = "/" + "/".join(done + [comp])
            host = self.host(path)
            if os.path.islink(host):
                hops += 1
                if hops > 40:  # ELOOP, as the kernel's limit
                    return None
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                todo.extend(c for c in target.split("/")[::-1] if c)
            elif os.path.lexists(host):
                done.append(comp)
            else:
                return None
        return "/" + "/".join(done)

    def is_dir(self, guest):
        real = self.resolve(guest)
        return real is not None and os.path.isdir(self.host(real))


class Elf:
    """What ld.so reads of one object: PT_INTERP and the dynamic section."""

    def __init__(self, data):
        if len(data) < 64:
            raise Invalid("file too short")
        if data[:4] != b"\x7fELF":
            raise Invalid("invalid ELF header")
        # Wrong class or machine: ld.so skips the file and goes on searching (open_verify).
        self.compatible = data[4] == 2 and struct.unpack_from("<H", data, 18)[0] == EM_X86_64
        self.interp, self.needed, self.rpath, self.runpath = None, [], None, None
        self.soname, self.flags_1 = None, 0
        if not self.compatible:
            return
        if data[5] != 1:
            raise Invalid("ELF file data encoding not little-endian")
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, off, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                loads.append((vaddr, off, filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (off, filesz)
            elif p_type == PT_INTERP:
                self.interp = data[off:off + filesz].split(b"\0")[0].decode()
        if dynamic is None:
            return  # statically linked
        entries = []
        for off in range(dynamic[0], dynamic[0] + dynamic[1] - 15, 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == DT_NULL:
                break
            entries.append((tag, val))
        strtab = next((self._offset(loads, v) for t, v in entries if t == DT_STRTAB), None)

        def string(val):
            return data[strtab + val:data.index(b"\0", strtab + val)].decode()

        for tag, val in entries:
            if tag == DT_NEEDED:
                self.needed.append(string(val))
            elif tag == DT_SONAME:
                self.soname = string(val)
            elif tag == DT_RPATH:
                self.rpath = string(val)
            elif tag == DT_RUNPATH:
                self.runpath = string(val)
            elif tag == DT_FLAGS_1:
                self.flags_1 = val

    @staticmethod
    def _offset(loads, vaddr):
        for start, off, size in loads:
            if start <= vaddr < start + size:
                return vaddr - start + off
        raise Invalid("DT_STRTAB outside every PT_LOAD")


class Loaded:
    """A link map entry: the object, where it was found, who loaded it."""

    def __init__(self, elf, found, real, origin, loader):
        self.elf, self.found, self.real, self.origin, self.loader = elf, found, real, origin, loader
        self.names = {found}  # ld.so's l_name / l_libname: found name, NEEDED names, SONAME
        if elf.soname:
            self.names.add(elf.soname)


class Closure:
    def __init__(self, root, conf_dirs):
        self.root, self.conf_dirs = root, conf_dirs
        self.elfs = {}  # real guest path -> Elf
        self.lines = []  # (name, found, real), each once
        self.missing = []  # (requester, name, searched, reason)

    def elf(self, real):
        if real not in self.elfs:
            with open(self.root.host(real), "rb") as f:
                self.elfs[real] = Elf(f.read())
        return self.elfs[real]

    def emit(self, name, found, real):
        if (name, found, real) not in self.lines:
            self.lines.append((name, found, real))

    def run(self, main):
        """One ld.so run with `main` as the executable: breadth-first, as _dl_map_object_deps."""
        real = self.root.resolve(main)
        main_obj = Loaded(self.elf(real), main, real, os.path.dirname(real), None)
        # $ORIGIN of the main program: the directory of its symlink-resolved path (/proc/self/exe).
        loaded = [main_obj]
        if main_obj.elf.interp:
            # The interpreter is in the link map from the start (its SONAME answers libc's NEEDED).
            interp_real = self.root.resolve(main_obj.elf.interp)
            if interp_real is None:
                self.missing.append((main, main_obj.elf.interp, [], "PT_INTERP not in the root"))
            else:
                self.emit(main_obj.elf.interp, main_obj.elf.interp, interp_real)
                loaded.append(Loaded(self.elf(interp_real), main_obj.elf.interp, interp_real,
                                     os.path.dirname(main_obj.elf.interp), None))
        queue = deque([main_obj])
        while queue:
            obj = queue.popleft()
            for name in obj.elf.needed:
                # Rule 2: an object already loaded under this name (found name or SONAME) is reused.
                hit = next((o for o in loaded if name in o.names), None)
                if hit is not None:
                    continue
                found = self.search(obj, name)
                if found is None:
                    continue
                found_path, real = found
                # ld.so also notices the same file (device, inode) under another name and reuses it.
                same = next((o for o in loaded if o.real == real), None)
                self.emit(name, found_path, real)
                if same is not None:
                    same.names.add(name)
                    continue
                new = Loaded(self.elf(real), found_path, real, os.path.dirname(found_path), obj)
                new.names.add(name)
                loaded.append(new)
                queue.append(new)

    def search(self, obj, name):
        """_dl_map_object's search for `name` needed by `obj`: (found, real) or None (recorded)."""
        if "/" in name:
            # Rule 1: a path, not searched. A relative one would be relative to ld.so's working
            # directory; we take it relative to the root's / (the guest's cwd is unknown).
            path = "/" + expand(name, obj.origin).lstrip("/")
            return self.try_dirs(obj, name, [("path", [os.path.dirname(path)])], os.path.basename(path))
        groups = []
        if obj.elf.runpath is None:
            # Rule 3: DT_RPATH of the requester, then of each loader up to the executable, each only
            # if that object has no DT_RUNPATH (cache_rpath).
            o = obj
            while o is not None:
                if o.elf.runpath is None and o.elf.rpath is not None:
                    groups.append((f"RPATH({o.found})", split_path(o.elf.rpath, o.origin)))
                o = o.loader
        # Rule 4: LD_LIBRARY_PATH is not used: the guest's init runs with none set.
        if obj.elf.runpath is not None:
            # Rule 5: DT_RUNPATH of the requester only, not inherited by what it loads.
            groups.append(("RUNPATH", split_path(obj.elf.runpath, obj.origin)))
        if not obj.elf.flags_1 & DF_1_NODEFLIB:
            # Rule 6: ld.so.cache, for which the root's /etc/ld.so.conf directories stand in.
            groups.append(("ld.so.conf", self.conf_dirs))
            # Rule 7: the system search path.
            groups.append(("default", DEFAULT_DIRS))
        return self.try_dirs(obj, name, groups, name)

    def try_dirs(self, obj, name, groups, file):
        """The first compatible ELF named `file` in the groups' directories (open_path).
        glibc-hwcaps and legacy hwcap subdirectories (x86_64/, tls/) are not searched: Debian
        ships nothing there for the guest's packages."""
        for _, dirs in groups:
            for d in dirs:
                found = d.rstrip("/") + "/" + file
                real = self.root.resolve(found)
                if real is None or not os.path.isfile(self.root.host(real)):
                    continue
                try:
                    if self.elf(real).compatible:
                        return found, real
                except Invalid as e:
                    # ld.so gives up on the whole program here rather than trying the next dir.
                    self.missing.append((obj.found, name, groups, f"{found}: {e}"))
                    return None
        self.missing.append((obj.found, name, groups, None))
        return None


def expand(s, origin):
    """Substitutes $ORIGIN, $LIB and $PLATFORM (also in braces), as _dl_dst_substitute."""
    return DST_RE.sub(lambda m: origin if (m.group(1) or m.group(2)) == "ORIGIN" else DST[m.group(1) or m.group(2)], s)


def split_path(value, origin):
    # An empty element means ld.so's working directory; unknown in the guest, so not searched.
    return [expand(d, origin) for d in value.split(":") if d]


def read_ld_so_conf(root, guest, seen):
    """Directories listed by /etc/ld.so.conf, following `include` globs (relative ones are
    relative to the including file's directory, as ldconfig does). Stand-in for ld.so.cache."""
    real = root.resolve(guest)
    if real is None or real in seen or not os.path.isfile(root.host(real)):
        return []
    seen.add(real)
    dirs = []
    with open(root.host(real), errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("hwcap "):
                continue
            if line.startswith("include") and line[7:8] in (" ", "\t"):
                for pattern in line[8:].split():
                    if not pattern.startswith("/"):
                        pattern = os.path.dirname(guest) + "/" + pattern
                    for host in sorted(glob.glob(glob.escape(root.host_dir) + pattern)):
                        dirs += read_ld_so_conf(root, host[len(root.host_dir):], seen)
            else:
                dirs.append(line.split("=", 1)[0])  # libc5-era "dir=TYPE"
    return dirs


@functools.lru_cache(maxsize=None)
def package_hint(name, owners, root):
    base = os.path.basename(name)
    listed = [(p, pkg) for p, pkg in owners if os.path.basename(p) == base]
    present = [(p, pkg) for p, pkg in listed if os.path.lexists(root.host(p))]
    if present:
        where = ", ".join(f"{p} from package {pkg}" for p, pkg in present)
        return f"present at {where} but not on the search path"
    if listed:
        # The owners list names it, but the file is not in this root: a stale or foreign list.
        return "missing from the stage; the owners list says " + ", ".join(f"package {pkg} ships {p}" for p, pkg in listed)
    # Debian policy 8.1: libfoo.so.2 -> libfoo2; a name ending in a digit gets a hyphen.
    m = re.match(r"^(.*?)\.so(?:\.(\d+))?", base)
    stem, version = (m.group(1), m.group(2)) if m else (base, None)
    guess = (stem + ("-" if stem[-1:].isdigit() else "") + version if version else stem).lower().replace("_", "-")
    hint = f"install package {guess} (guessed from the soname by Debian policy 8.1)"
    if shutil.which("apt-cache"):
        # A purely virtual name exits 0 with no record: known only with a "Package:" stanza.
        show = subprocess.run(["apt-cache", "show", "--no-all-versions", guess], capture_output=True,
                              text=True, timeout=60)
        known = show.returncode == 0 and "Package:" in show.stdout
        hint += "; apt-cache knows it" if known else "; apt-cache does not know it"
    if shutil.which("dpkg-query"):
        # A name only, never a file: the host's package database may know who ships the soname.
        found = subprocess.run(["dpkg-query", "-S", f"*/{base}"], capture_output=True, text=True, timeout=60)
        owners_on_host = sorted({line.split(":", 1)[0].split(":")[0] for line in found.stdout.splitlines() if ":" in line})
        if owners_on_host:
            hint += f"; on this host, package {', '.join(owners_on_host)} ships a file of that name"
    return hint


def main(argv):
    parser = argparse.ArgumentParser(prog="elf-closure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--owners", help="TSV: guest path, package (every file in the stage)")
    parser.add_argument("objects", nargs="+", metavar="OBJECT")
    args = parser.parse_args(argv)  # exits 2 on a usage error
    if not os.path.isdir(args.root):
        return usage(f"--root {args.root}: not a directory")
    root = Root(args.root)
    owners = ()
    if args.owners:
        try:
            with open(args.owners) as f:
                owners = tuple(tuple(line.rstrip("\n").split("\t", 1)) for line in f if "\t" in line)
        except OSError as e:
            return usage(f"--owners {args.owners}: {e.strerror}")
    closure = Closure(root, read_ld_so_conf(root, "/etc/ld.so.conf", set()))
    for obj in args.objects:
        if not obj.startswith("/"):
            return usage(f"{obj}: not an absolute guest path")
        real = root.resolve(obj)
        if real is None or not os.path.isfile(root.host(real)):
            return usage(f"{obj}: not found in {args.root}")
        try:
            if not closure.elf(real).compatible:
                return usage(f"{obj}: not an x86_64 ELF64 object")
        except Invalid as e:
            return usage(f"{obj}: not ELF ({e})")
    for obj in args.objects:
        closure.run(obj)
    for line in closure.lines:
        print("\t".join(line))
    reported = set()
    for requester, name, groups, reason in closure.missing:
        if (requester, name) in reported:
            continue
        reported.add((requester, name))
        if reason is not None:
            print(f"elf-closure: {requester} needs {name}: {reason}", file=sys.stderr)
            continue
        searched = " ".join(f"{label}:{','.join(dirs)}" for label, dirs in groups if dirs) or "nothing"
        print(f"elf-closure: {requester} needs {name}: not found in {searched}; {package_hint(name, owners, root)}",
              file=sys.stderr)
    return 1 if closure.missing else 0


def usage(message):
    print(f"elf-closure: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
