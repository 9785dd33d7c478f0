#!/usr/bin/python3
"""tests/sandbox_exec.py PROGRAM [ARG...] - run PROGRAM under a seccomp
filter equivalent to these lines of systemd/outpost.service.in:

  SystemCallFilter=@system-service
  SystemCallFilter=~@privileged @resources
  SystemCallErrorNumber=EPERM
  RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6   (others: EAFNOSUPPORT)
  MemoryDenyWriteExecute=yes                         (mmap W+X, mprotect X: EPERM)
  SystemCallArchitectures=native                     (x86-64 only)

so the daemon can be tried against the unit's filter where systemd cannot
start services (a container, CI). The groups are expanded by
`systemd-analyze syscall-filter`, the same table systemd uses. Run the
integration tests this way with two wrapper scripts, e.g.

  printf '#!/bin/sh\\nexec %s/tests/sandbox_exec.py %s/outpostd "$@"\\n' "$PWD" "$PWD" >/tmp/od
  (the same for outpostctl); chmod +x; OUTPOSTD=/tmp/od OUTPOSTCTL=/tmp/oc pytest ...

The tests run as root, so SQLite's fchown of its journal (which it only
does as root) fails with EPERM, harmlessly; under the unit outpostd is
not root. x86-64 only.
"""
import ctypes
import os
import platform
import re
import struct
import subprocess
import sys


def groups():
    """every @group of systemd-analyze syscall-filter: name -> members"""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                         capture_output=True, text=True, check=True).stdout
    table, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = table.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return table


def expand(table, name):
    out = set()
    for m in table.get(name, []):
        out |= expand(table, m) if m.startswith("@") else {m}
    return out


def syscall_numbers():
    text = open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h").read()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", text)}


def main():
    if len(sys.argv) < 2 or platform.machine() != "x86_64":
        sys.exit(__doc__ if len(sys.argv) < 2 else "sandbox_exec: x86-64 only")
    table = groups()
    names = expand(table, "@system-service") - expand(table, "@privileged") - \
        expand(table, "@resources")
    nr = syscall_numbers()
    allowed = sorted({nr[n] for n in names if n in nr})

    LD, JEQ, JSET, AND, RET = 0x20, 0x15, 0x45, 0x54, 0x06
    ALLOW, ERRNO, KILL = 0x7fff0000, 0x00050000, 0x80000000
    EPERM, EAFNOSUPPORT = 1, 97
    W, X = 2, 4
    NR, ARCH, ARG0, ARG2 = 0, 4, 16, 32

    def ins(code, k, jt=0, jf=0):
        return struct.pack("HBBI", code, jt, jf, k)

    p = [ins(LD, ARCH), ins(JEQ, 0xc000003e, 1, 0), ins(RET, KILL), ins(LD, NR)]
    # socket(): AF_UNIX 1, AF_INET 2, AF_INET6 10
    p += [ins(JEQ, nr["socket"], 0, 6), ins(LD, ARG0), ins(JEQ, 1, 2, 0), ins(JEQ, 2, 1, 0),
          ins(JEQ, 10, 0, 1), ins(RET, ALLOW), ins(RET, ERRNO | EAFNOSUPPORT)]
    # mmap() writable and executable at once
    p += [ins(LD, NR), ins(JEQ, nr["mmap"], 0, 4), ins(LD, ARG2), ins(AND, W | X),
          ins(JEQ, W | X, 0, 1), ins(RET, ERRNO | EPERM), ins(LD, NR)]
    # mprotect() to executable
    for n in ("mprotect", "pkey_mprotect"):
        p += [ins(JEQ, nr[n], 0, 3), ins(LD, ARG2), ins(JSET, X, 0, 1),
              ins(RET, ERRNO | EPERM), ins(LD, NR)]
    for n in allowed:
        p += [ins(JEQ, n, 0, 1), ins(RET, ALLOW)]
    p += [ins(RET, ERRNO | EPERM)]

    buf = ctypes.create_string_buffer(b"".join(p))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(p), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        sys.exit(f"sandbox_exec: seccomp: {os.strerror(ctypes.get_errno())}")
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
