#!/usr/bin/env python3
"""
scripts/bench.py - the driver of scripts/bench: outpostd against Postfix +
OpenDKIM under the same load, on loopback, in a temporary directory.

scripts/bench (the shell wrapper) installs what is missing and runs this;
the options are documented there and in docs/PERFORMANCE.md.

Both systems relay to one smtp-sink each (Postfix's test server, run as
nobody, appending every message to a dump file) and sign with the same
keys. The load is Postfix's smtp-source; the latency run and the idle
connections come from scripts/bench_client.py. Each system runs in a
cpuacct cgroup of its own (or, where cgroups are not writable, its CPU time
is summed over its process tree from /proc, children that exited included
through their parent's cutime/cstime), and a sampler sums the RSS of its
processes every 100 ms.

Every process started here is stopped on the way out, whatever happens.
Standard library only.
"""

import argparse
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "scripts" / "bench_client.py"
FILL = ROOT / "scripts" / "bench_fill.py"
PY = sys.executable or "/usr/bin/python3"

SBIN = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
SMTP_SOURCE = shutil.which("smtp-source", path=":".join(SBIN)) or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink", path=":".join(SBIN)) or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix", path=":".join(SBIN)) or "/usr/sbin/postfix"
OPENDKIM = shutil.which("opendkim", path=":".join(SBIN)) or "/usr/sbin/opendkim"

SENDER = "sender@example.com"
RCPT = "rcpt@dest.test"
HELO = "bench.test"
RSA_SEL = "bench"
ED_SEL = "benched"
UPSTREAM_CONNS = 20        # = Postfix's default_destination_concurrency_limit
PAGE = os.sysconf("SC_PAGE_SIZE")
TCK = os.sysconf("SC_CLK_TCK")

SYSTEMS = ("outpost", "postfix")
SCENARIOS = ("off", "rsa", "rsa+ed25519", "big", "latency", "idle")
TITLES = {"outpost": "outpost", "postfix": "Postfix+OpenDKIM"}


T0 = time.monotonic()


def log(msg):
    print(f"bench: [{time.monotonic() - T0:5.0f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before listening")
        time.sleep(0.05)
    raise BenchError(f"{what} does not listen on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_socket(path, proc, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
            return
        except OSError:
            pass
        finally:
            s.close()
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before listening")
        time.sleep(0.05)
    raise BenchError(f"{what} does not listen on {path} after {timeout:.0f}s")


# ---- processes -----------------------------------------------------------------

PROCS = []          # every Popen started here, stopped by stop_all()


def spawn(argv, out, cgroup=None, **kw):
    """Start argv with stdout+stderr to the file out, inside cgroup."""
    f = open(out, "ab")

    def pre():
        if cgroup is not None:
            cgroup.enter()
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         preexec_fn=pre, **kw)
    f.close()
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30.0):
    if p is None or p.poll() is not None:
        return p.returncode if p is not None else None
    try:
        p.send_signal(sig)
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def _waited(p, timeout):
    """True if p is still running after timeout seconds"""
    try:
        p.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        return True


def remove_sink_dirs(keep):
    for d in SINK_DIRS:
        if keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


def stop_all():
    for p in reversed(PROCS):
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    for p in reversed(PROCS):
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---- CPU and memory ------------------------------------------------------------

def proc_table():
    """pid -> (ppid, utime+stime+cutime+cstime in seconds)"""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        t[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / TCK)
    return t


def tree(roots, table):
    """roots and all their descendants that are alive in table"""
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, stack = [], [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(kids.get(pid, ()))
    return out


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class CpuGroup:
    """A cpuacct cgroup (v1) for one system's processes; without one (not
    root, no v1 hierarchy), CPU is summed over the process tree of roots."""
    BASE = Path("/sys/fs/cgroup/cpuacct")
    parent = None

    def __init__(self, name):
        self.path = None
        self.roots = []
        try:
            if CpuGroup.parent is None:
                CpuGroup.parent = self.BASE / f"outpost-bench.{os.getpid()}"
                CpuGroup.parent.mkdir()
            p = CpuGroup.parent / name
            p.mkdir()
            (p / "cpuacct.usage").read_text()
            self.path = p
        except OSError:
            self.path = None

    @property
    def method(self):
        return "cgroup v1 cpuacct" if self.path else "/proc process tree"

    def enter(self):        # in the child, before exec
        if self.path is not None:
            with open(self.path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def pids(self):
        if self.path is not None:
            try:
                return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return []
        return tree(self.roots, proc_table())

    def cpu(self):
        if self.path is not None:
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        t = proc_table()
        return sum(t[p][1] for p in tree(self.roots, t))

    def rss(self):
        return sum(rss_bytes(p) for p in self.pids())

    def remove(self):
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass

    @classmethod
    def remove_all(cls):
        """after every process has stopped: the groups left, then ours"""
        if cls.parent is None:
            return
        for d in list(cls.parent.glob("*")) + [cls.parent]:
            if d.is_dir():
                try:
                    d.rmdir()
                except OSError:
                    pass


def pss_bytes(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) * 1024 if m else 0
    except (OSError, ValueError):
        return 0


class RssSampler(threading.Thread):
    """The peak of the summed RSS of a system's processes, every 100 ms.
    A sum of RSS counts shared pages (libraries, Postfix's many processes
    of one binary) once per process; so the summed PSS, which splits them,
    is sampled too, every second (smaps_rollup costs more to read)."""

    def __init__(self, group, every=0.1, pss_every=10):
        super().__init__(daemon=True)
        self.group, self.every, self.pss_every = group, every, pss_every
        self.peak = self.peak_pss = 0
        self.halt = threading.Event()

    def sample(self, pss):
        pids = self.group.pids()
        self.peak = max(self.peak, sum(rss_bytes(p) for p in pids))
        if pss:
            self.peak_pss = max(self.peak_pss, sum(pss_bytes(p) for p in pids))

    def run(self):
        i = 0
        while not self.halt.is_set():
            self.sample(i % self.pss_every == 0)
            i += 1
            self.halt.wait(self.every)

    def finish(self):
        self.halt.set()
        self.join()
        self.sample(True)
        return self.peak


# ---- the sink ------------------------------------------------------------------

SHM = Path("/dev/shm")
SINK_DIRS = []      # sink directories outside the bench's temp dir


class Sink:
    """smtp-sink as nobody, chrooted (-R) into its directory so the dump is
    writable whatever the permissions above; -c keeps a running count.

    The directory (and so the dump) is on /dev/shm when there is one: the
    sink is the same for both systems and should cost them as little as
    possible. Dumping to disk made it a system under test of its own: its
    writes queued behind the writeback of what the previous run left
    (Postfix's queue, the previous dump), and it then took up to half a
    core and answered slowly, which showed as the relay delivering at
    half its acceptance rate."""

    def __init__(self, d):
        if SHM.is_dir() and os.access(SHM, os.W_OK):
            self.dir = Path(tempfile.mkdtemp(prefix=f"outpost-bench-sink.{d.name}.", dir=SHM))
            SINK_DIRS.append(self.dir)
        else:
            self.dir = d / "sink"
            self.dir.mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        self.port = free_port()
        self.counter = d / "sink.out"
        self.proc = None

    def start(self):
        self.proc = spawn([SMTP_SINK, "-u", "nobody", "-c", "-R", str(self.dir), "-D", "dump",
                           f"127.0.0.1:{self.port}", "1024"], self.counter)
        wait_port(self.port, self.proc, "smtp-sink")

    def count(self):
        """messages received so far (the last mesg=N of the counter)"""
        try:
            with open(self.counter, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 400))
                tail = f.read().decode("ascii", "replace")
        except OSError:
            return 0
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def stop(self):
        stop(self.proc)

    def records(self):
        """the dumped messages, as lists of lines (the sink's own header
        lines included)"""
        path = self.dir / "dump"
        if not path.exists():
            return
        rec = []
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"X-Client-Addr: ") and rec:
                    yield rec
                    rec = []
                rec.append(line)
        if rec:
            yield rec


def signatures(sink, verify, keys):
    """Counts the DKIM-Signature headers of every message the sink has (by
    algorithm), and verifies the first few messages with dkimpy."""
    n = 0
    by_alg = {"rsa-sha256": 0, "ed25519-sha256": 0}
    samples = []
    for rec in sink.records():
        n += 1
        hdr = []
        for line in rec:
            if line in (b"\n", b"\r\n"):
                break
            hdr.append(line)
        text = b"".join(hdr)
        for m in re.finditer(rb"^DKIM-Signature:(.*?)(?=^\S)", text + b"X", re.M | re.S):
            a = re.search(rb"\ba\s*=\s*([a-z0-9-]+)", m.group(1))
            if a and a.group(1).decode() in by_alg:
                by_alg[a.group(1).decode()] += 1
        if len(samples) < verify:
            samples.append(rec)
    verified = dkim_verify(samples, keys) if verify else None
    return {"messages": n, "signatures": by_alg, "verified": verified}


def dkim_verify(samples, keys):
    """dkimpy over the sample messages, every signature checked against the
    keys' TXT records; {"checked": k, "ok": k_ok, "failures": [...]} or a note
    when dkimpy is not there."""
    try:
        import dkim  # python3-dkim
    except ImportError:
        return {"note": "python3-dkim not installed: signatures counted, not verified"}

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return keys.get(n.rstrip("."), "").encode()

    out = {"checked": 0, "ok": 0, "failures": []}
    for rec in samples:
        lines = [l for l in rec if not l.startswith((b"X-Client-", b"X-Helo-", b"X-Mail-", b"X-Rcpt-"))]
        while lines and lines[-1] in (b"\n", b"\r\n"):
            lines.pop()         # the dump's record separator
        msg = b"".join(l.rstrip(b"\r\n") + b"\r\n" for l in lines)
        nsig = len(re.findall(rb"^DKIM-Signature:", msg, re.M | re.I))
        for i in range(nsig):
            out["checked"] += 1
            try:
                d = dkim.DKIM(msg)
                ok = d.verify(idx=i, dnsfunc=dnsfunc)
            except Exception as e:  # noqa: BLE001 - report whatever dkimpy raises
                ok = False
                out["failures"].append(repr(e)[:200])
            if ok:
                out["ok"] += 1
            elif not out["failures"]:
                out["failures"].append(f"signature {i} did not verify")
    return out


# ---- the two systems -----------------------------------------------------------

class System:
    name = ""

    def __init__(self, bench, label, dkim):
        self.bench, self.dkim = bench, dkim
        self.dir = bench.tmp / f"{label}-{self.name}"
        self.dir.mkdir()
        self.sink = Sink(self.dir)
        self.group = CpuGroup(f"{label}-{self.name}")
        self.port = free_port()
        self.procs = []

    def start_sink(self):
        # Every run starts with nothing of the previous one still being
        # written back: a run that follows Postfix's (thousands of queue
        # files) would otherwise pay for that writeback in its fsyncs.
        os.sync()
        self.sink.start()

    def finish(self):
        self.sink.stop()
        self.group.remove()


class Outpost(System):
    name = "outpost"

    def __init__(self, bench, label, dkim):
        super().__init__(bench, label, dkim)
        self.conf = self.dir / "outpost.conf"
        self.logf = self.dir / "outpostd.log"
        self.proc = None
        keys = {"off": "", "rsa": f"dkim_key = {RSA_SEL}:../keys/rsa.pem",
                "rsa+ed25519": f"dkim_key = {RSA_SEL}:../keys/rsa.pem, {ED_SEL}:../keys/ed25519.pem"}
        self.conf.write_text(f"""; written by scripts/bench
[server]
hostname = bench.test
state_dir = {self.dir}/state
trusted_networks = 127.0.0.0/8
max_message_size = 25M
max_recipients = 100
max_connections = 20000
max_connections_per_ip = 20000
check_interval = 0
metrics_listen = no
unsigned = {"relay" if dkim == "off" else "reject"}

[listen bench]
address = 127.0.0.1:{self.port}
tls = none
auth = optional

[upstream out]
address = 127.0.0.1:{self.sink.port}
tls = none
max_connections = {UPSTREAM_CONNS}

[domain example.com]
upstream = out
{keys[dkim]}

[queue]
retry = 1s, 5s
max_lifetime = 1h
""")
        (self.dir / "state").mkdir()
        r = subprocess.run([bench.outpostd, "-c", str(self.conf), "-n"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise BenchError(f"outpostd -n refused {self.conf}: {r.stdout}{r.stderr}")

    def start(self):
        self.start_sink()
        self.proc = spawn([self.bench.outpostd, "-c", str(self.conf), "-f"], self.logf,
                          cgroup=self.group)
        self.group.roots = [self.proc.pid]
        wait_port(self.port, self.proc, "outpostd")

    def stop(self):
        rc = stop(self.proc)
        if rc not in (0, None):
            log(f"outpostd ({self.dir.name}) exited with {rc}")
        self.finish()
        return rc

    def log_text(self):
        return self.logf.read_text(errors="replace")

    def deferred(self):
        return len(re.findall(r"status=deferred", self.log_text()))

    def signed_logged(self):
        t = self.log_text()
        return {"rsa-sha256": len(re.findall(r": dkim d=example\.com s=\S+ a=rsa-sha256", t)),
                "ed25519-sha256": len(re.findall(r": dkim d=example\.com s=\S+ a=ed25519-sha256",
                                                 t))}


POSTFIX_MASTER_CF = """\
# written by scripts/bench: every service unchrooted
{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix(System):
    name = "postfix"

    def __init__(self, bench, label, dkim):
        super().__init__(bench, label, dkim)
        self.etc = self.dir / "etc"
        self.queue = self.dir / "queue"
        self.data = self.dir / "data"
        for d in (self.etc, self.queue, self.data):
            d.mkdir()
        pf = pwd.getpwnam("postfix")
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        self.logf = self.dir / "postfix.log"
        self.proc = None
        self.opendkims = []             # [(conf, port, Popen)]
        # OpenDKIM 2.11 signs every key with its one SignatureAlgorithm: a
        # KeyTable with an RSA and an Ed25519 key plus MultipleSignatures
        # fails the Ed25519 signature ("451 4.7.0 resource unavailable"),
        # so dual signing is two OpenDKIM milters in a row, one per key.
        algs = {"off": [], "rsa": ["rsa"], "rsa+ed25519": ["rsa", "ed25519"]}[dkim]
        # The milter socket: a Unix socket by default, as Debian's opendkim
        # package sets it up. Over TCP on loopback each message waits on
        # small milter packets (about 90 ms per message with 4 sessions,
        # a third of the Unix-socket rate), which is not OpenDKIM's cost.
        for alg in algs:
            conf = self.dir / f"opendkim-{alg}.conf"
            sock = self.dir / f"opendkim-{alg}.sock"
            if bench.args.milter == "unix" and len(str(sock)) < 100:
                addr = (f"local:{sock}", f"unix:{sock}", sock)
            else:
                port = free_port()
                addr = (f"inet:{port}@127.0.0.1", f"inet:127.0.0.1:{port}", port)
            self.write_opendkim(conf, addr[0], alg)
            self.opendkims.append([conf, addr, None])
        milters = " ".join(a[1] for _, a, _ in self.opendkims)
        milter = (f"smtpd_milters = {milters}\n"
                  "non_smtpd_milters = $smtpd_milters\nmilter_default_action = tempfail\n"
                  if milters else "")
        (self.etc / "main.cf").write_text(f"""# written by scripts/bench
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{self.sink.port}
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
maillog_file = /dev/stdout
default_process_limit = 200
in_flow_delay = {bench.args.in_flow_delay}
{milter}""")
        (self.etc / "master.cf").write_text(
            POSTFIX_MASTER_CF.format(port=f"127.0.0.1:{self.port}"))

    def write_opendkim(self, conf, socket_spec, alg):
        key, sel = {"rsa": ("rsa.pem", RSA_SEL), "ed25519": ("ed25519.pem", ED_SEL)}[alg]
        conf.write_text(f"""# written by scripts/bench
Syslog no
Mode s
Socket {socket_spec}
UMask 000
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.0/8
RequireSafeKeys no
Domain example.com
Selector {sel}
KeyFile {self.bench.tmp}/keys/{key}
SignatureAlgorithm {alg}-sha256
""")

    def start(self):
        self.start_sink()
        roots = []
        for od in self.opendkims:
            od[2] = spawn([OPENDKIM, "-f", "-x", str(od[0])], self.dir / "opendkim.log",
                          cgroup=self.group)
            roots.append(od[2].pid)
            if isinstance(od[1][2], int):
                wait_port(od[1][2], od[2], "opendkim")
            else:
                wait_socket(od[1][2], od[2], "opendkim")
        self.proc = spawn([POSTFIX, "-c", str(self.etc), "start-fg"], self.logf, cgroup=self.group)
        roots.append(self.proc.pid)
        self.group.roots = roots
        wait_port(self.port, self.proc, "postfix")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                log("postfix did not stop in 60 s; killing its master")
        stop(self.proc)
        # libmilter notices SIGTERM only at its next poll timeout (some
        # 5 s); the measurements are taken, so after 1 s it is killed.
        for od in self.opendkims:
            if od[2] is not None and od[2].poll() is None:
                od[2].terminate()
        for od in self.opendkims:
            if od[2] is not None and _waited(od[2], 1.0):
                stop(od[2], signal.SIGKILL, 1.0)
        self.finish()
    def log_text(self):
        return self.logf.read_text(errors="replace")

    def deferred(self):
        return len(re.findall(r"status=deferred", self.log_text()))


MAKERS = {"outpost": Outpost, "postfix": Postfix}


# ---- measurements --------------------------------------------------------------

def wait_delivered(sink, base, n, timeout):
    deadline = time.monotonic() + timeout
    while sink.count() - base < n:
        if time.monotonic() > deadline:
            return False
        if sink.proc.poll() is not None:
            # Not ours to kill before the end: someone else's cleanup (a
            # pkill smtp-sink on this shared machine) can be.
            log(f"smtp-sink ({sink.dir}) exited with {sink.proc.returncode} after "
                f"{sink.count()} messages")
            return False
        time.sleep(0.02)
    return True


def load_run(bench, sysobj, n, c, size):
    """smtp-source -s C -m N -l SIZE -d against the system; accepted = its
    counter of completed DATA; end to end = until the sink has them all."""
    sink = sysobj.sink
    base = sink.count()
    sampler = RssSampler(sysobj.group)
    cpu0 = sysobj.group.cpu()
    st0 = cpu_times()
    sampler.start()
    t0 = time.perf_counter()
    r = subprocess.run([SMTP_SOURCE, "-c", "-s", str(c), "-m", str(n), "-l", str(size), "-d",
                        "-f", SENDER, "-t", RCPT, "-M", HELO, f"127.0.0.1:{sysobj.port}"],
                       capture_output=True, text=True, errors="replace")
    t_acc = time.perf_counter() - t0
    counts = re.findall(r"(\d+)", r.stdout)
    accepted = int(counts[-1]) if counts else 0
    if r.returncode != 0:       # smtp-source gives up at the first error
        accepted = max(0, accepted - 1)
    complete = wait_delivered(sink, base, accepted,
                              max(60.0, n / 20.0) if r.returncode == 0 else 5.0)
    t_e2e = time.perf_counter() - t0
    cpu1 = sysobj.group.cpu()
    peak = sampler.finish()
    time.sleep(0.3)                 # anything after all N is a duplicate
    delivered = sink.count() - base
    res = {
        "n": n, "sessions": c, "size": size,
        "accepted": accepted, "delivered": delivered,
        "smtp_source_exit": r.returncode,
        "accept_seconds": round(t_acc, 3), "e2e_seconds": round(t_e2e, 3),
        "accepted_per_s": round(accepted / t_acc, 1) if t_acc > 0 else None,
        "e2e_per_s": round(delivered / t_e2e, 1) if complete and t_e2e > 0 else None,
        "peak_rss_mb": round(peak / 1048576, 1),
        "peak_pss_mb": round(sampler.peak_pss / 1048576, 1),
        "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_s_per_1000": round((cpu1 - cpu0) * 1000 / max(accepted, 1), 3),
        "cpu_method": sysobj.group.method,
        "steal_pct": steal_pct(st0, cpu_times()),
    }
    if r.returncode != 0 or r.stderr.strip():
        res["smtp_source_stderr"] = r.stderr.strip()[-500:]
    return res


def cpu_times():
    """(all, steal) jiffies of all CPUs so far (/proc/stat), or None"""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), v[7]
    except (OSError, ValueError, IndexError):
        return None


def steal_pct(t0, t1):
    """the share of CPU time a hypervisor took from this machine between
    two cpu_times(): a VM's vCPU that is not running stalls whatever was
    on it, which shows in latency tails and not in any profile"""
    if t0 is None or t1 is None or t1[0] <= t0[0]:
        return None
    return round(100.0 * (t1[1] - t0[1]) / (t1[0] - t0[0]), 1)


def latency_run(bench, sysobj, rate, duration, conns, size):
    out = sysobj.dir / "latency.json"
    base = sysobj.sink.count()
    st0 = cpu_times()
    r = subprocess.run([PY, str(CLIENT), "pace", "--port", str(sysobj.port), "--rate", str(rate),
                        "--duration", str(duration), "-c", str(conns), "-s", str(size),
                        "--out", str(out)], capture_output=True, text=True)
    if not out.exists():
        raise BenchError(f"bench_client.py pace failed: {r.stderr.strip()[-500:]}")
    res = json.loads(out.read_text())
    res["steal_pct"] = steal_pct(st0, cpu_times())
    complete = wait_delivered(sysobj.sink, base, res["accepted"], 120)
    time.sleep(0.3)
    res["delivered"] = sysobj.sink.count() - base
    res["all_delivered"] = complete
    if r.stderr.strip():
        res["client_stderr"] = r.stderr.strip()[-500:]
    return res


def idle_run(bench, sysobj, count):
    """count idle connections held open against outpostd: its RSS before
    and with all of them held."""
    before = rss_bytes(sysobj.proc.pid)
    p = subprocess.Popen([PY, str(CLIENT), "hold", "--port", str(sysobj.port), "-n", str(count)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    PROCS.append(p)
    line = p.stdout.readline()      # "held N" once every connection has its 220
    held = int(line.split()[1]) if line.startswith("held ") else 0
    time.sleep(1.0)
    with_held = rss_bytes(sysobj.proc.pid)
    try:
        with open(f"/proc/{sysobj.proc.pid}/status") as f:
            hwm = re.search(r"VmHWM:\s+(\d+)", f.read())
    except OSError:
        hwm = None
    alive = sysobj.proc.poll() is None
    p.stdin.close()
    p.wait(60)
    err = p.stderr.read().strip()
    res = {"connections": count, "held": held, "daemon_alive": alive,
           "rss_before_mb": round(before / 1048576, 1),
           "rss_held_mb": round(with_held / 1048576, 1),
           "rss_per_connection_kb": round((with_held - before) / max(held, 1) / 1024, 2),
           "vmhwm_mb": round(int(hwm.group(1)) / 1024, 1) if hwm else None}
    if err:
        res["client_stderr"] = err[-500:]
    refused = len(re.findall(r"refused: .*max_connections", sysobj.log_text()))
    res["refused_logged"] = refused
    return res


# ---- scenarios -----------------------------------------------------------------

ROWS = [
    # title, key, fmt, "higher is better"
    ("accepted msg/s", "accepted_per_s"),
    ("end-to-end msg/s", "e2e_per_s"),
    ("peak RSS sum (MB)", "peak_rss_mb"),
    ("peak PSS sum (MB)", "peak_pss_mb"),
    ("CPU s / 1000 msg", "cpu_s_per_1000"),
    ("accepted / delivered", None),
    ("DKIM signatures", None),
    ("CPU stolen by the host %", "steal_pct"),
]

LAT_ROWS = [
    ("offered msg/s", "rate"),
    ("achieved msg/s", "achieved_per_s"),
    ("latency p50 (ms)", "latency_p50_ms"),
    ("latency p99 (ms)", "latency_p99_ms"),
    ("latency max (ms)", "latency_max_ms"),
    ("late starts (>100 ms)", "late"),
    ("failed", "failed"),
    ("accepted / delivered", None),
    ("CPU stolen by the host %", "steal_pct"),
]


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="outpost-bench."))
        # Postfix's daemons open data_directory files by absolute path as
        # user postfix: every directory above must be searchable by others.
        os.chmod(self.tmp, 0o755)
        for d in [self.tmp, *self.tmp.parents]:
            if not os.stat(d).st_mode & 0o001:
                shutil.rmtree(self.tmp)
                raise BenchError(f"{d} is not searchable by others (mode "
                                 f"{os.stat(d).st_mode & 0o777:o}): user postfix could not "
                                 "reach its data_directory; set TMPDIR elsewhere")
        self.outpostd = args.outpostd
        self.outpostctl = args.outpostctl
        self.systems = [args.only] if args.only else list(SYSTEMS)
        self.doc = {"machine": machine(args), "options": {}, "scenarios": {}, "notes": []}
        self.failed = []
        self.keys_txt = {}

    def fail(self, what):
        self.failed.append(what)
        log(f"FAILED: {what}")

    def make_keys(self):
        d = self.tmp / "keys"
        d.mkdir()
        (d / "state").mkdir()
        conf = d / "keygen.conf"
        conf.write_text(f"[server]\nhostname = bench.test\nstate_dir = {d}/state\n"
                        f"[listen k]\naddress = 127.0.0.1:{free_port()}\ntls = none\n"
                        "auth = optional\n")
        for typ, sel, extra, fname in (("rsa", RSA_SEL, ["--bits", "2048"], "rsa.pem"),
                                       ("ed25519", ED_SEL, [], "ed25519.pem")):
            r = subprocess.run([self.outpostctl, "-c", str(conf), "dkim", "keygen", "example.com",
                                sel, "--type", typ, *extra, "--dir", str(d)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise BenchError(f"outpostctl dkim keygen ({typ}) failed: {r.stderr}")
            (d / f"example.com.{sel}.pem").rename(d / fname)
            os.chmod(d / fname, 0o600)
            txt = "".join(re.findall(r'"([^"]*)"', r.stdout))
            self.keys_txt[f"{sel}._domainkey.example.com"] = txt

    def scenario(self, key, title, label, dkim, n, c, size, systems=None):
        sc = {"title": title, "dkim": dkim, "n": n, "sessions": c, "size": size}
        for s in systems or self.systems:
            log(f"{title}: {TITLES[s]} ...")
            sysobj = MAKERS[s](self, label, dkim)
            try:
                sysobj.start()
                res = load_run(self, sysobj, n, c, size)
            finally:
                sysobj.stop()
            res["deferred_logged"] = sysobj.deferred()
            res.update(self.check_dkim(sysobj, dkim))
            if res["accepted"] != n or res["delivered"] != n:
                self.fail(f"{key} {s}: accepted {res['accepted']}, delivered "
                          f"{res['delivered']} of {n}")
            sc[s] = res
        self.ratio(sc, [k for _, k in ROWS if k and k != "steal_pct"])
        self.doc["scenarios"][key] = sc
        return sc

    def check_dkim(self, sysobj, dkim):
        verify = 3 if dkim != "off" else 0
        sig = signatures(sysobj.sink, verify, self.keys_txt)
        out = {"sink_messages": sig["messages"], "signatures": sig["signatures"],
               "verified": sig["verified"]}
        want = {"off": [], "rsa": ["rsa-sha256"],
                "rsa+ed25519": ["rsa-sha256", "ed25519-sha256"]}[dkim]
        got = [a for a, k in sig["signatures"].items() if k]
        msgs = sig["messages"]
        if isinstance(sysobj, Outpost) and dkim != "off":
            logged = sysobj.signed_logged()
            out["signatures_logged"] = logged
            if not all(logged[a] >= 1 for a in want):
                self.fail(f"{sysobj.dir.name}: outpostd logged no {want} signature")
        complete = all(sig["signatures"][a] >= msgs > 0 for a in want)
        out["signed_as_configured"] = complete if want else (not got)
        if want and not complete:
            missing = [a for a in want if sig["signatures"][a] < msgs]
            note = (f"{TITLES[sysobj.name]}: {', '.join(missing)} signatures on "
                    f"{', '.join(str(sig['signatures'][a]) for a in missing)} of {msgs} messages")
            out["dkim_note"] = note
            self.fail(note)
        v = sig["verified"]
        if v and "checked" in v and v["ok"] != v["checked"]:
            self.fail(f"{sysobj.dir.name}: {v['checked'] - v['ok']} of {v['checked']} sampled "
                      f"signatures do not verify: {v['failures'][:1]}")
        return out

    def ratio(self, sc, keys):
        if "outpost" in sc and "postfix" in sc:
            sc["ratio"] = {k: (round(sc["outpost"][k] / sc["postfix"][k], 2)
                               if isinstance(sc["outpost"].get(k), (int, float)) and
                               isinstance(sc["postfix"].get(k), (int, float)) and sc["postfix"][k]
                               else None) for k in keys}

    def latency(self, key, rate, duration, conns, size):
        title = (f"acceptance latency, DKIM rsa, {rate} msg/s offered for {duration:g} s over "
                 f"{conns} connections, {size}-byte messages (bench_client.py)")
        sc = {"title": title, "dkim": "rsa", "rate": rate, "duration": duration,
              "connections": conns, "size": size}
        for s in self.systems:
            log(f"latency: {TITLES[s]} ...")
            sysobj = MAKERS[s](self, "lat", "rsa")
            try:
                sysobj.start()
                res = latency_run(self, sysobj, rate, duration, conns, size)
            finally:
                sysobj.stop()
            res["deferred_logged"] = sysobj.deferred()
            if res["failed"] or res["delivered"] != res["accepted"]:
                self.fail(f"{key} {s}: {res['failed']} failed, {res['delivered']} of "
                          f"{res['accepted']} delivered")
            sc[s] = res
        self.ratio(sc, [k for _, k in LAT_ROWS if k and k not in ("rate", "steal_pct")])
        self.doc["scenarios"][key] = sc

    def idle(self, count):
        log(f"idle: {count} connections held against outpostd ...")
        sysobj = Outpost(self, "idle", "off")
        try:
            sysobj.start()
            res = idle_run(self, sysobj, count)
        finally:
            sysobj.stop()
        if res["held"] != count or not res["daemon_alive"]:
            self.fail(f"idle: held {res['held']} of {count}, daemon alive {res['daemon_alive']}")
        self.doc["scenarios"]["idle"] = {"title": f"outpost only: {count} idle connections",
                                         "outpost": res}

    def prefilled(self, count, n, c, size):
        key = "prefilled"
        title = (f"outpost only, DKIM rsa, queue pre-filled with {count} deferred messages: "
                 f"{n} x {size} bytes, {c} sessions")
        if not FILL.exists():
            log(f"-D {count}: needs scripts/bench_fill.py, which is not there; skipped")
            self.doc["notes"].append("-D given but scripts/bench_fill.py is missing: skipped")
            return
        log(f"{title} ...")
        sysobj = Outpost(self, "prefill", "rsa")
        r = subprocess.run([PY, str(FILL), "--state-dir", str(sysobj.dir / "state"),
                            "--config", str(sysobj.conf), "-n", str(count)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sysobj.finish()
            self.fail(f"bench_fill.py exited with {r.returncode}: {r.stderr.strip()[-300:]}")
            return
        try:
            sysobj.start()
            res = load_run(self, sysobj, n, c, size)
        finally:
            sysobj.stop()
        res["deferred_logged"] = sysobj.deferred()
        res.update(self.check_dkim(sysobj, "rsa"))
        res["prefilled"] = count
        if res["delivered"] > n:
            self.doc["notes"].append(f"prefilled: the sink got {res['delivered'] - n} of the "
                                     "pre-filled messages during the run")
        sc = {"title": title, "dkim": "rsa", "n": n, "sessions": c, "size": size,
              "outpost": res}
        base = self.doc["scenarios"].get("tput-rsa", {}).get("outpost")
        if base:
            sc["ratio_to_empty_queue"] = {k: round(res[k] / base[k], 2) if res.get(k) and base.get(k)
                                          else None for _, k in ROWS if k}
        self.doc["scenarios"][key] = sc

    def run(self):
        a = self.args
        self.doc["options"] = {"n": a.n, "sessions": a.c, "size": a.s, "big_size": a.big_size,
                               "big_n": a.big_n, "rate": a.r, "duration": a.duration,
                               "latency_connections": a.lat_conns, "idle": a.idle,
                               "prefill": a.D, "only": a.only, "quick": a.quick,
                               "scenarios": a.scenarios,
                               "in_flow_delay": a.in_flow_delay, "milter_socket": a.milter,
                               "upstream_connections": UPSTREAM_CONNS}
        self.make_keys()
        want = a.scenarios.split(",")
        for dkim in ("off", "rsa", "rsa+ed25519"):
            if dkim not in want:
                continue
            self.scenario(f"tput-{dkim}", f"throughput, DKIM {dkim}: {a.n} x {a.s} bytes, "
                          f"{a.c} sessions (smtp-source)", dkim, dkim, a.n, a.c, a.s)
        if "postfix" in self.systems and "rsa+ed25519" in want:
            self.doc["notes"].append(
                "Postfix+OpenDKIM dual-signs with two OpenDKIM milters in a row (rsa-sha256, "
                "then ed25519-sha256): OpenDKIM 2.11 applies its one SignatureAlgorithm to every "
                "key, so a KeyTable with both keys and MultipleSignatures yes fails the Ed25519 "
                "signature (451 4.7.0 resource unavailable)")
        if "big" in want:
            self.scenario("tput-big-rsa", f"throughput, DKIM rsa: {a.big_n} x {a.big_size} bytes, "
                          f"{a.c} sessions (smtp-source)", "big", "rsa", a.big_n, a.c, a.big_size)
        if "latency" in want:
            self.latency("latency-rsa", a.r, a.duration, a.lat_conns, a.s)
        if a.idle and "outpost" in self.systems and "idle" in want:
            self.idle(a.idle)
        if a.D and "outpost" in self.systems:
            self.prefilled(a.D, a.n, a.c, a.s)
        self.doc["failed"] = self.failed


# ---- report --------------------------------------------------------------------

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def cell(res, key, title):
    if res is None:
        return "-"
    if title == "accepted / delivered":
        return f"{res['accepted']} / {res['delivered']}"
    if title == "DKIM signatures":
        s = res.get("signatures", {})
        parts = [f"{k.split('-')[0]} {v}" for k, v in s.items() if v]
        return ", ".join(parts) if parts else "none"
    return fmt(res.get(key))


def table(rows, head):
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                       for i, c in enumerate(head)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                               for i, c in enumerate(r)).rstrip())
    return lines


def report(doc):
    out = []
    m = doc["machine"]
    out.append(f"machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, {m['openssl']}, "
               f"Postfix {m['postfix']}, {m['opendkim']}, outpost {m['outpost']}")
    if m.get("rsa2048_sign_per_s"):
        rate = m["rsa2048_sign_per_s"]
        out.append(f"signing bound: one RSA-2048 signature takes {1000 / rate:.2f} ms of CPU "
                   f"here (openssl speed: {rate:.0f}/s per core), so {m['cores']} cores sign "
                   f"at most {rate * (m['cores'] or 1):.0f} msg/s with nothing else running")
    o = doc["options"]
    methods = sorted({r.get("cpu_method") for sc in doc["scenarios"].values()
                      for r in sc.values() if isinstance(r, dict) and r.get("cpu_method")})
    out.append(f"setup: loopback; each system relays to its own smtp-sink over at most "
               f"{o.get('upstream_connections')} connections; Postfix in_flow_delay = "
               f"{o.get('in_flow_delay')}, OpenDKIM milter on a {o.get('milter_socket')} socket; "
               f"CPU from {', '.join(methods) or '-'}; RSS/PSS summed over each system's "
               "processes")
    out.append("ratio = outpost / Postfix+OpenDKIM (rates: higher is better for outpost; "
               "latency, RSS, CPU: lower is)")
    for key, sc in doc["scenarios"].items():
        out.append("")
        out.append(sc["title"])
        systems = [s for s in SYSTEMS if s in sc]
        if key == "idle":
            r = sc["outpost"]
            out.extend(table([["connections held", str(r["held"])],
                              ["RSS before (MB)", fmt(r["rss_before_mb"])],
                              ["RSS with all held (MB)", fmt(r["rss_held_mb"])],
                              ["RSS per connection (KB)", fmt(r["rss_per_connection_kb"])]],
                             ["", "outpost"]))
            continue
        rows_def = LAT_ROWS if key.startswith("latency") else ROWS
        head = [""] + [TITLES[s] for s in systems] + (["ratio"] if "ratio" in sc else [])
        if "ratio_to_empty_queue" in sc:
            head.append("vs empty queue")
        rows = []
        for title, k in rows_def:
            row = [title] + [cell(sc.get(s), k, title) for s in systems]
            if "ratio" in sc:
                row.append(fmt(sc["ratio"].get(k)) if k else "")
            if "ratio_to_empty_queue" in sc:
                row.append(fmt(sc["ratio_to_empty_queue"].get(k)) if k else "")
            rows.append(row)
        out.extend(table(rows, head))
    if doc["notes"]:
        out.append("")
        out.extend(f"note: {n}" for n in doc["notes"])
    if doc.get("failed"):
        out.append("")
        out.extend(f"FAILED: {f}" for f in doc["failed"])
    return "\n".join(out)


def cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(args):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1).strip()
    except (OSError, AttributeError):
        cpu = platform.processor()
    commit = cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "openssl": cmd(["openssl", "version"]).split(" (")[0],
            "postfix": cmd(["postconf", "-dh", "mail_version"]),
            "opendkim": re.sub(r"^.*OpenDKIM Filter v", "OpenDKIM ",
                               (cmd([OPENDKIM, "-V"]) or "?").splitlines()[0]),
            "outpost": (commit + ("+dirty" if dirty else "")) or "?",
            "outpostd": args.outpostd, "loadavg_start": loadavg(), "cpu_busy_start": cpu_busy(),
            "rsa2048_sign_per_s": rsa_sign_rate(1 if args.quick else 2)}


def rsa_sign_rate(seconds):
    """RSA-2048 signatures per second on one core (openssl speed): every
    DKIM-signed message costs one, so cores x this bounds the signed rate"""
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "rsa2048"],
                             capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"^rsa 2048 bits\s+\S+s\s+\S+s\s+([\d.]+)", out, re.M)
        return float(m.group(1)) if m else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def cpu_busy(seconds=1.0):
    """the fraction of all CPUs busy over the next seconds (/proc/stat):
    the load average decays over minutes and counts disk waits, so it
    says little about whether another benchmark is running now"""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]          # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return round(1 - (i1 - i0) / max(t1 - t0, 1), 2)
    except (OSError, ValueError, IndexError):
        return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench", description="outpost against Postfix+OpenDKIM")
    ap.add_argument("-n", type=int, default=20000, help="messages per throughput run")
    ap.add_argument("-c", type=int, default=50, help="parallel smtp-source sessions")
    ap.add_argument("-s", type=int, default=2048, help="message size in bytes")
    ap.add_argument("-o", help="JSON output file")
    ap.add_argument("-k", action="store_true", help="keep the temporary directory")
    ap.add_argument("-r", type=int, default=500, help="offered msg/s of the latency run")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of the latency run")
    ap.add_argument("--lat-conns", type=int, default=25, help="connections of the latency run")
    ap.add_argument("--big-size", type=int, default=102400)
    ap.add_argument("--big-n", type=int, help="messages of the big-message run (default n/10)")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections (0 = skip)")
    ap.add_argument("-D", type=int, default=0, help="pre-filled deferred messages (0 = skip)")
    ap.add_argument("--only", choices=SYSTEMS)
    ap.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    ap.add_argument("--in-flow-delay", default="0", help="Postfix in_flow_delay (default 0)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma list of the scenarios to run (default all)")
    ap.add_argument("--milter", choices=("unix", "inet"), default="unix",
                    help="OpenDKIM's milter socket (default unix)")
    a = ap.parse_args()
    if a.quick:
        a.n, a.c, a.r, a.duration, a.idle = min(a.n, 100), min(a.c, 4), 40, 2.0, min(a.idle, 200)
        a.lat_conns = min(a.lat_conns, 4)
        a.big_n = a.big_n or 10
    a.big_n = a.big_n or max(1, a.n // 10)
    bad = set(a.scenarios.split(",")) - set(SCENARIOS)
    if bad:
        ap.error(f"--scenarios: unknown {', '.join(sorted(bad))} (known: {', '.join(SCENARIOS)})")
    for k in ("n", "c", "s", "r", "big_size", "big_n", "lat_conns"):
        if getattr(a, k) < 1:
            ap.error(f"{k} must be positive")
    a.outpostd = os.environ.get("OUTPOSTD") or str(ROOT / "outpostd")
    a.outpostctl = os.environ.get("OUTPOSTCTL") or str(ROOT / "outpostctl")
    if os.geteuid() != 0:
        ap.error("must run as root (smtp-sink -u nobody, a Postfix instance, cgroups)")
    for b in (a.outpostd, a.outpostctl, SMTP_SOURCE, SMTP_SINK, POSTFIX, OPENDKIM):
        if not os.access(b, os.X_OK):
            ap.error(f"{b} is not an executable (build first, or install {'postfix opendkim'})")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(a.idle * 2 + 1024, 4096)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        except (ValueError, OSError):
            pass
    if a.idle and resource.getrlimit(resource.RLIMIT_NOFILE)[0] < a.idle + 256:
        ap.error(f"--idle {a.idle} needs ulimit -n of at least {a.idle + 256} (hard limit {hard})")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    try:
        b = Bench(a)
    except BenchError as e:
        log(str(e))
        return 1
    rc = 0
    try:
        b.run()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except BenchError as e:
        log(str(e))
        b.failed.append(str(e))
        rc = 1
    finally:
        stop_all()
        CpuGroup.remove_all()
        remove_sink_dirs(a.k)
    b.doc["failed"] = b.failed
    b.doc["machine"]["loadavg_end"] = loadavg()
    busy = b.doc["machine"]["cpu_busy_start"] or 0
    if busy > 0.15:
        b.doc["notes"].append(f"the CPUs were {busy:.0%} busy before the bench started: something "
                              "else was running; repeat before believing the numbers")
    text = report(b.doc)
    print(text, flush=True)
    out = Path(a.o).resolve() if a.o else b.tmp / "bench.json"
    out.write_text(json.dumps(b.doc, indent=2) + "\n")
    (b.tmp / "bench.txt").write_text(text + "\n")
    print(f"JSON: {out}")
    if a.k:
        log(f"kept {b.tmp}")
    elif a.o:
        shutil.rmtree(b.tmp, ignore_errors=True)
    else:
        for d in b.tmp.iterdir():
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
        log(f"results in {b.tmp}")
    if rc == 0 and b.failed:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
