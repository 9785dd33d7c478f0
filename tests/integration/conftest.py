"""
Integration fixtures: the real outpostd and outpostctl, driven from outside.

What lives here:
  - binaries: $OUTPOSTD / $OUTPOSTCTL, default ./outpostd and ./outpostctl in
    the repository root (the top build directory of an in-tree build);
  - a self-signed certificate (CN=localhost, SAN localhost, 127.0.0.1, ::1)
    made once per session with the openssl CLI;
  - a users file made by the real `outpostctl passwd` (alice, bob, carol);
  - Daemon: writes a config from a dict of sections, runs `outpostd -c CONF
    -f -d` with its output in a log file, waits (bounded) for the listeners,
    stops it with SIGTERM, and at teardown fails the test if the log holds a
    sanitizer report;
  - Upstream: an aiosmtpd server requiring STARTTLS and AUTH (or a plain
    one) that records what arrives and can be told to answer 4xx/5xx;
  - SMTPClient: a raw-socket SMTP client that sends bytes verbatim (smtplib
    fixes line endings and dot-stuffing, which the hostile tests must not).

Every wait is a poll against a deadline; nothing sleeps for long.
"""

import base64
import os
import pwd
import tempfile
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPOSTD = os.environ.get("OUTPOSTD") or str(REPO / "outpostd")
OUTPOSTCTL = os.environ.get("OUTPOSTCTL") or str(REPO / "outpostctl")

HOSTNAME = "relay.test.example"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 10.0

# Users made by `outpostctl passwd` once per session.
USERS = {
    "alice": ("alice-Secret-1", "alice@example.com,@example.org"),
    "bob": ("bob-Secret-2", "bob@example.com"),
    # carol also sends for a subdomain (DKIM dkim_subdomains tests)
    "carol": ("carol-Secret-3", "carol@example.com,@news.example.com"),
}
ALICE_PW = USERS["alice"][0]
BOB_PW = USERS["bob"][0]
CAROL_PW = USERS["carol"][0]

UPSTREAM_USER = "relayuser"
UPSTREAM_PASSWORD = "secret"

# Lines that are a sanitizer's finding. LeakSanitizer refusing to run (under
# ptrace or in some containers) is an environment problem, not a finding.
SANITIZER_RE = re.compile(r"AddressSanitizer|runtime error:|LeakSanitizer")
SANITIZER_IGNORE_RE = re.compile(
    r"LeakSanitizer has encountered a fatal error|LeakSanitizer does not work under ptrace")

# The line logged once a message is accepted (committed to the queue).
ACCEPTED_RE = re.compile(r"\w+: from=<[^>]*>, size=\d+, nrcpt=\d+")
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)", re.I)


# Started as root (as CI runs the suite), outpostd runs as [server] user,
# default outpost, once its ports are bound: what it reads or writes after
# that (state, Maildirs, files a reload reads again) must be that
# account's. scripts/test creates the account.
DAEMON_USER = "outpost"
TMP_ROOT = Path(tempfile.gettempdir()).resolve()


def daemon_ids():
    """(uid, gid) the daemon will run as, or None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(DAEMON_USER)
    except KeyError:
        pytest.fail(f"no account {DAEMON_USER!r}: outpostd started as root runs as it "
                    "(scripts/test creates it: useradd --system outpost)")
    return pw.pw_uid, pw.pw_gid


def give_to_daemon(*paths, keep=()):
    """Hand test files under the temporary directory to the daemon's
    account (recursively, except what is under keep), and let it traverse
    their parents."""
    ids = daemon_ids()
    if ids is None:
        return
    keep = [Path(k).resolve() for k in keep]
    for p in paths:
        p = Path(p).resolve()
        if not p.exists() or TMP_ROOT not in p.parents or \
                any(k == p or k in p.parents for k in keep):
            continue
        for a in reversed(p.parents):
            if a == TMP_ROOT or TMP_ROOT in a.parents:
                mode = a.stat().st_mode
                if not mode & 0o001:
                    a.chmod((mode & 0o7777) | 0o001)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = [x for x in dirs if Path(root, x).resolve() not in keep]
                os.chown(root, *ids)
                for f in files:
                    os.lchown(os.path.join(root, f), *ids)
        else:
            os.lchown(p, *ids)


def config_paths(sections):
    """Every absolute path named in a config's values."""
    out = []
    for keys in sections.values():
        for v in keys.values():
            for tok in re.split(r"[\s,]+", str(v)):
                i = tok.find("/")
                if i >= 0 and (i == 0 or tok[i - 1] == ":"):
                    out.append(tok[i:])
    return out


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def free_port(family=socket.AF_INET):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def can_connect(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def client_tls_context(cafile):
    """A client context that trusts exactly the test certificate."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = True
    return ctx


# ---------------------------------------------------------------------------
# Certificates and users


def make_cert(directory, cn="localhost"):
    """Self-signed certificate and key (mode 0600) in directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "30",
         "-subj", f"/CN={cn}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
        check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return cert, key


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def binaries():
    for b in (OUTPOSTD, OUTPOSTCTL):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is not an executable; build first (make) or set "
                        "OUTPOSTD / OUTPOSTCTL")
    return OUTPOSTD, OUTPOSTCTL


def outpostctl_passwd(conf, user, password, senders):
    """Run the real `outpostctl passwd`; return its users-file line."""
    args = [OUTPOSTCTL, "-c", str(conf), "passwd", user]
    if senders:
        args.append(senders)
    p = subprocess.run(args, input=password + "\n", capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, f"outpostctl passwd failed ({p.returncode}): {p.stderr}"
    lines = [l for l in p.stdout.splitlines() if l.startswith(user + ":")]
    assert len(lines) == 1, f"outpostctl passwd printed {p.stdout!r}"
    return lines[0]


@pytest.fixture(scope="session")
def users_file(tmp_path_factory, binaries, tls_files):
    d = tmp_path_factory.mktemp("users")
    (d / "state").mkdir()
    conf = d / "outpost.conf"
    conf.write_text(render_config(default_sections(d, free_port(), tls_files, d / "users")))
    path = d / "users"
    path.write_text("")         # the config names it; outpostctl may load it
    lines = [outpostctl_passwd(conf, u, pw, senders) for u, (pw, senders) in USERS.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------
# Config


def default_sections(workdir, port, tls, users):
    """The config every test starts from: one STARTTLS listener with AUTH
    required, 127.0.0.1 *not* trusted, the maildir upstream, fast retries."""
    workdir = Path(workdir)
    cert, key = tls
    return {
        "server": {
            "hostname": HOSTNAME,
            "state_dir": str(workdir / "state"),
            "users_file": str(users),
            "trusted_networks": "192.0.2.0/24",
            "max_message_size": "1M",
            "max_recipients": "5",
            "log_level": "debug",
            # The tests that are not about DKIM send from domains without a
            # key; test_dkim.py removes this to test the reject default.
            "unsigned": "relay",
            # No self-check at start: it would ask the Internet's DNS.
            "check_interval": "0",
            # Daemons run side by side: none takes the default 9587
            # (test_metrics.py gives its own a free port).
            "metrics_listen": "no",
        },
        "listen submission": {
            "address": f"127.0.0.1:{port}",
            "tls": "starttls",
            "auth": "required",
            "cert": str(cert),
            "key": str(key),
        },
        "upstream main": {
            "address": f"maildir:{workdir / 'outbox'}",
        },
        "domain example.com": {
            "upstream": "main",
        },
        "queue": {
            "retry": "1s, 2s",
            "max_lifetime": "60s",
            "scan_interval": "1s",
        },
    }


def merge_sections(base, overrides):
    """overrides: {section: {key: value}}; a None section or value removes it."""
    out = {name: dict(keys) for name, keys in base.items()}
    for name, keys in (overrides or {}).items():
        if keys is None:
            out.pop(name, None)
            continue
        sec = out.setdefault(name, {})
        for k, v in keys.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return out


def render_config(sections):
    lines = ["; written by tests/integration/conftest.py"]
    for name, keys in sections.items():
        lines.append("")
        lines.append(f"[{name}]")
        for k, v in keys.items():
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def parse_address(addr):
    """'127.0.0.1:25' / '[::1]:25' -> (host, port)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", addr.strip())
    if not m:
        return None
    if m.group(1):
        return m.group(1), int(m.group(2))
    return m.group(3), int(m.group(4))


# ---------------------------------------------------------------------------
# The daemon


class Daemon:
    """One outpostd under test. Config is a dict of sections (see
    default_sections); change self.sections and call write_config() /
    restart() to run it differently."""

    def __init__(self, workdir, sections, name="outpostd"):
        self.workdir = Path(workdir)
        self.sections = sections
        self.conf_path = self.workdir / "outpost.conf"
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.exit_codes = []
        self.keep_root = []     # paths start() leaves root's (give_to_daemon)
        (self.workdir / "state").mkdir(parents=True, exist_ok=True)
        self.write_config()

    # -- config -----------------------------------------------------------
    def write_config(self, text=None):
        self.conf_path.write_text(text if text is not None else render_config(self.sections))
        # What the new config names is read again by a reload, after the
        # daemon dropped root.
        self.give()

    @property
    def port(self):
        """Port of the first listener."""
        return self.listeners()[0][1]

    def listeners(self):
        out = []
        for name, keys in self.sections.items():
            if name.startswith("listen ") and "address" in keys:
                hp = parse_address(keys["address"])
                if hp:
                    out.append(hp)
        return out

    def listener_port(self, name):
        return parse_address(self.sections[f"listen {name}"]["address"])[1]

    @property
    def state_dir(self):
        return Path(self.sections["server"]["state_dir"])

    @property
    def maildir(self):
        for name, keys in self.sections.items():
            if name.startswith("upstream ") and keys.get("address", "").startswith("maildir:"):
                return Path(keys["address"][len("maildir:"):])
        return self.workdir / "outbox"

    # -- process ----------------------------------------------------------
    def env(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        return env

    def give(self):
        """What the daemon reads and writes after its privilege drop
        belongs to its account (when the tests run as root)."""
        give_to_daemon(self.workdir, *config_paths(self.sections), keep=self.keep_root)

    def start(self, wait=True, cwd=None):
        assert not self.running(), "daemon already running"
        self.give()
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [OUTPOSTD, "-c", str(self.conf_path), "-f", "-d"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=str(cwd or self.workdir), env=self.env())
        finally:
            logf.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        pending = list(self.listeners())
        while pending:
            if self.proc.poll() is not None:
                self.exit_codes.append(self.proc.returncode)
                raise AssertionError(
                    f"outpostd exited with {self.proc.returncode} during start-up; "
                    f"log tail:\n{self.log_tail()}")
            host, port = pending[0]
            if can_connect(host, port, timeout=0.2):
                pending.pop(0)
                continue
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"outpostd did not accept on {host}:{port} within {timeout}s; "
                    f"log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit code and
        fails if the daemon needed SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
                self.exit_codes.append("SIGKILL")
                self.proc = None
                raise AssertionError(
                    f"outpostd ignored SIGTERM for {timeout}s; log tail:\n{self.log_tail()}")
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.exit_codes.append("SIGKILL")
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def check_config(self):
        """outpostd -n: returns the CompletedProcess (text)."""
        return subprocess.run([OUTPOSTD, "-c", str(self.conf_path), "-n"],
                              capture_output=True, text=True, timeout=30,
                              cwd=str(self.workdir), env=self.env())

    # -- log --------------------------------------------------------------
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self):
        """Position in the log; pass as since= to look only at newer lines."""
        return len(self.log())

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, regex, timeout=10.0, since=0):
        rx = re.compile(regex, re.M)

        def find():
            return rx.search(self.log()[since:])
        try:
            return wait_until(find, timeout, f"log line /{regex}/")
        except AssertionError as e:
            raise AssertionError(f"{e}; log tail:\n{self.log_tail()}") from None

    def sanitizer_reports(self):
        return [l for l in self.log().splitlines()
                if SANITIZER_RE.search(l) and not SANITIZER_IGNORE_RE.search(l)]

    # -- maildir ----------------------------------------------------------
    def maildir_files(self):
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        return sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))

    def maildir_messages(self):
        return [p.read_bytes() for p in self.maildir_files()]

    def wait_maildir(self, n, timeout=10.0):
        return wait_until(lambda: len(self.maildir_files()) >= n and self.maildir_messages(),
                          timeout, f"{n} message(s) in {self.maildir}/new")

    def assert_nothing_queued(self, settle=0.5, since=0):
        """Nothing accepted: no from= line (logged at commit, before any
        250), and the maildir stays empty a little while (the maildir
        upstream delivers right after the commit)."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            assert not self.maildir_files(), "a rejected message was delivered"
            time.sleep(0.1)
        assert not self.maildir_files(), "a rejected message was delivered"
        assert not ACCEPTED_RE.search(self.log()[since:]), \
            f"a rejected message was queued; log tail:\n{self.log_tail()}"


@pytest.fixture
def daemon_factory(tmp_path, binaries, tls_files, users_file):
    """make(config={...overrides}, start=True, name=...) -> Daemon."""
    made = []

    def make(config=None, start=True, subdir=None):
        workdir = tmp_path / (subdir or f"d{len(made)}")
        workdir.mkdir(parents=True, exist_ok=True)
        sections = merge_sections(default_sections(workdir, free_port(), tls_files, users_file),
                                  config)
        d = Daemon(workdir, sections)
        made.append(d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in made:
        try:
            d.stop()
        except AssertionError as e:
            problems.append(str(e))
        reports = d.sanitizer_reports()
        if reports:
            problems.append(f"sanitizer report in {d.log_path}:\n" + "\n".join(reports[:20]))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory()


# ---------------------------------------------------------------------------
# Raw SMTP client


class Reply:
    def __init__(self, lines):
        self.lines = lines                      # full lines as str, CRLF cut
        self.code = int(lines[-1][:3])
        m = re.match(r"\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b", lines[0])
        self.enh = m.group(1) if m else ""
        self.text = "\n".join(lines)

    def startswith(self, prefix):
        return self.lines[0].startswith(prefix)

    def __str__(self):
        return self.text

    __repr__ = __str__


class ConnectionClosed(Exception):
    pass


class SMTPClient:
    """Raw SMTP over a socket: bytes go out verbatim, replies are read whole.

    c = SMTPClient(port); c.ehlo(); c.starttls(ctx); c.ehlo(); c.auth_plain(u, p)
    """

    def __init__(self, port, host="127.0.0.1", implicit_tls=None, timeout=IO_TIMEOUT,
                 read_greeting=True):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tls = False
        if implicit_tls is not None:
            self.sock = implicit_tls.wrap_socket(self.sock, server_hostname="localhost")
            self.tls = True
        self.greeting = self.reply() if read_greeting else None
        self.ehlo_reply = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- bytes ------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ConnectionClosed(f"send failed: {e}") from None

    def _recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.01))
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            chunk = b""
        except ssl.SSLError as e:
            if "closed" in str(e).lower() or "eof" in str(e).lower():
                chunk = b""
            else:
                raise
        return chunk

    def reply(self, timeout=None):
        """Read one complete (possibly multi-line) reply."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                raw, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                if not re.match(r"\d{3}([ -]|$)", line):
                    raise AssertionError(f"malformed reply line {line!r}")
                lines.append(line)
                if len(line) == 3 or line[3] == " ":
                    return Reply(lines)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete reply within {timeout or self.timeout}s "
                                     f"(got {lines!r} + {self.buf!r})")
            try:
                chunk = self._recv(left)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionClosed(f"connection closed (partial reply {lines!r} {self.buf!r})")
            self.buf += chunk

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def is_closed(self, timeout=3.0):
        """True once the server closed the connection within timeout; data
        that arrives meanwhile is kept in self.buf."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self._recv(deadline - time.monotonic())
            except socket.timeout:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def silent(self, timeout=1.0):
        """True when no byte arrives within timeout (a close counts as
        silence: nothing was answered)."""
        if self.buf:
            return False
        try:
            chunk = self._recv(timeout)
        except socket.timeout:
            return True
        self.buf += chunk
        return not chunk

    # -- SMTP -------------------------------------------------------------
    def ehlo(self, name="client.test"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, f"EHLO: {r}"
        self.ehlo_reply = r
        return r

    def extensions(self):
        """EHLO keywords of the last EHLO, upper case: {'SIZE': '1048576', ...}."""
        out = {}
        for line in self.ehlo_reply.lines[1:]:
            kw, _, arg = line[4:].partition(" ")
            out[kw.upper()] = arg
        return out

    def starttls(self, ctx):
        r = self.cmd("STARTTLS")
        assert r.code == 220, f"STARTTLS: {r}"
        self.wrap_tls(ctx)
        return r

    def wrap_tls(self, ctx):
        """TLS handshake on the existing socket (after a 220 to STARTTLS)."""
        assert self.buf == b"", f"plaintext after 220 to STARTTLS: {self.buf!r}"
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.tls = True

    def auth_plain(self, user, password):
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f"AUTH PLAIN {token}")

    def login(self, ctx, user, password, ehlo="client.test"):
        """EHLO, STARTTLS, EHLO, AUTH PLAIN; asserts success."""
        if not self.tls:
            self.ehlo(ehlo)
            self.starttls(ctx)
        self.ehlo(ehlo)
        r = self.auth_plain(user, password)
        assert r.code == 235, f"AUTH: {r}"
        return r

    def mail_transaction(self, mail_from, rcpts, data, stuff=True):
        """MAIL, RCPT..., DATA with data (bytes/str); returns the final reply.
        stuff: dot-stuff and add the final '.'; otherwise data goes raw."""
        r = self.cmd(f"MAIL FROM:<{mail_from}>")
        assert r.code == 250, f"MAIL: {r}"
        for rc in rcpts:
            r = self.cmd(f"RCPT TO:<{rc}>")
            assert r.code == 250, f"RCPT {rc}: {r}"
        r = self.cmd("DATA")
        assert r.code == 354, f"DATA: {r}"
        self.send(dot_stuff(data) if stuff else data)
        return self.reply()


def dot_stuff(data):
    """Message bytes -> DATA payload: CRLF ending, leading dots doubled,
    final '.'. The input must already use CRLF."""
    if isinstance(data, str):
        data = data.encode()
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")[:-1]
    out = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
    return out + b".\r\n"


def crlf(text):
    """Text with \\n line ends -> bytes with CRLF."""
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def simple_message(mail_from="alice@example.com", to="bob@example.net", subject="test",
                   body="Hello.\n", extra_headers=""):
    return crlf(f"From: {mail_from}\nTo: {to}\nSubject: {subject}\n{extra_headers}\n{body}")


def queue_id(reply):
    m = QUEUED_RE.match(reply.lines[-1] if isinstance(reply, Reply) else str(reply))
    assert m, f"not a 'queued as' reply: {reply}"
    return m.group(1)


def split_message(raw):
    """bytes -> (list of header lines incl. folded continuations joined, body)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no blank line between header and body"
    headers = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += b"\r\n" + line
        else:
            headers.append(line)
    return headers, body


def header_names(headers):
    return [h.split(b":", 1)[0].strip().lower().decode() for h in headers]


@pytest.fixture(scope="session")
def tls_ctx(tls_files):
    return client_tls_context(tls_files[0])


@pytest.fixture
def client_factory():
    """connect(port, **kw) -> SMTPClient; all closed at teardown."""
    made = []

    def connect(port, **kw):
        c = SMTPClient(port, **kw)
        made.append(c)
        return c

    yield connect
    for c in made:
        c.close()


@pytest.fixture
def authed(client_factory, tls_ctx, daemon):
    """A client logged in as alice on the default daemon."""
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    return c


# ---------------------------------------------------------------------------
# Upstream (aiosmtpd)


def _is_tls(server, session):
    """STARTTLS sets session.ssl; implicit TLS shows on the transport."""
    if session.ssl is not None:
        return True
    transport = getattr(server, "transport", None)
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class Received:
    """One transaction the upstream accepted."""

    def __init__(self, envelope, session, server):
        self.mail_from = envelope.mail_from
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.mail_options = list(envelope.mail_options)
        self.content = envelope.original_content
        if self.content is None:
            c = envelope.content
            self.content = c if isinstance(c, bytes) else c.encode("utf-8", "surrogateescape")
        self.tls = _is_tls(server, session)
        auth = getattr(session, "auth_data", None)
        self.auth_login = getattr(auth, "login", None)
        self.at = time.time()                   # when the final dot was answered


class _Handler:
    def __init__(self, up):
        self.up = up

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.up.lock:
            self.up.ehlos.append((hostname, _is_tls(server, session)))
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.up.lock:
            self.up.mail_attempts.append((address, _is_tls(server, session)))
            reply = self.up._next_reply(self.up.mail_replies, address)
            if not reply:
                reply = self.up._rate_reply()
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.up.lock:
            self.up.rcpt_attempts.append(address)
            reply = self.up._next_reply(self.up.rcpt_replies, address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.up.lock:
            reply = self.up._next_reply(self.up.data_replies, "*")
            if reply:
                self.up.rejected.append(Received(envelope, session, server))
                return reply
            self.up.received.append(Received(envelope, session, server))
        return "250 2.0.0 OK upstream-accepted"


class Upstream:
    """aiosmtpd upstream. tls=True: STARTTLS required; auth=True: AUTH
    required (relayuser/secret). Scripted answers:
      rcpt_replies[addr] / mail_replies[addr] / data_replies['*']:
        a str (always) or a list (one per attempt, then accept);
      greeting_replies: list of greetings for the next connections
        (e.g. ['421 4.3.2 busy']), each closes the connection;
      rate_limit = (N, reply): MAIL gets reply (e.g. '421 4.7.0 Too many
        messages, slow down') while N transactions already began within
        the last second, the way a provider's smarthost throttles."""

    def __init__(self, tls_files, password_file, port=None, tls=True, auth=True,
                 implicit=False):
        self.cert, self.key = tls_files
        self.password_file = password_file     # for the daemon's [upstream]
        self.port = port or free_port()
        self.tls = tls
        self.auth = auth
        self.implicit = implicit
        self.lock = threading.Lock()
        self.received = []
        self.rejected = []
        self.ehlos = []
        self.mail_attempts = []
        self.rcpt_attempts = []
        self.auth_attempts = []
        self.rcpt_replies = {}
        self.mail_replies = {}
        self.data_replies = {}
        self.greeting_replies = []
        self.connections = 0
        self.controller = None
        self.rate_limit = None
        self.rate_starts = []                   # time of each MAIL let through
        self.rate_refused = 0

    def _rate_reply(self):
        """rate_limit's verdict on one more MAIL (lock held)."""
        if not self.rate_limit:
            return None
        n, reply = self.rate_limit
        now = time.time()
        self.rate_starts = [t for t in self.rate_starts if now - t < 1.0]
        if len(self.rate_starts) >= n:
            self.rate_refused += 1
            return reply
        self.rate_starts.append(now)
        return None

    def _next_reply(self, table, key):
        v = table.get(key)
        if isinstance(v, list):
            return v.pop(0) if v else None
        return v

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult
        login = getattr(auth_data, "login", b"")
        password = getattr(auth_data, "password", b"")
        with self.lock:
            self.auth_attempts.append((mechanism, login, _is_tls(server, session)))
        ok = login == UPSTREAM_USER.encode() and password == UPSTREAM_PASSWORD.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        up = self

        class ScriptedSMTP(SMTP):
            async def _handle_client(self):
                with up.lock:
                    up.connections += 1
                    greeting = up.greeting_replies.pop(0) if up.greeting_replies else None
                if greeting:
                    await self.push(greeting)
                    self.transport.close()
                    return
                await super()._handle_client()

        class ScriptedController(Controller):
            def factory(self):
                with warnings.catch_warnings():
                    # AUTH without STARTTLS is right for implicit TLS.
                    warnings.simplefilter("ignore", UserWarning)
                    return ScriptedSMTP(self.handler, **self.SMTP_kwargs)

        kwargs = {}
        sctx = None
        if self.tls or self.implicit:
            sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            sctx.load_cert_chain(str(self.cert), str(self.key))
        if self.tls and not self.implicit:
            kwargs.update(tls_context=sctx, require_starttls=True)
        if self.auth:
            # With implicit TLS the whole connection is encrypted; aiosmtpd
            # only knows about STARTTLS, so it must not insist on it.
            kwargs.update(auth_required=True, auth_require_tls=self.tls and not self.implicit,
                          authenticator=self._authenticator)
        self.controller = ScriptedController(
            _Handler(self), hostname="127.0.0.1", port=self.port,
            server_hostname="upstream.test", ready_timeout=10,
            ssl_context=sctx if self.implicit else None, **kwargs)
        self.controller.start()
        with self.lock:
            self.connections = 0        # the controller's own start-up probe
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self):
        with self.lock:
            return list(self.received)

    def wait_messages(self, n, timeout=10.0):
        return wait_until(lambda: len(self.messages()) >= n and self.messages(),
                          timeout, f"{n} message(s) at the upstream")

    def upstream_section(self, **extra):
        sec = {"address": f"127.0.0.1:{self.port}"}
        if self.implicit:
            sec["tls"] = "implicit"
        else:
            sec["tls"] = "starttls" if self.tls else "none"
        if self.tls or self.implicit:
            sec["tls_verify"] = "no"
        if self.auth:
            sec["username"] = UPSTREAM_USER
            sec["password_file"] = str(self.password_file)
        sec.update(extra)
        return sec


@pytest.fixture
def upstream_factory(tls_files, tmp_path):
    made = []
    secret = tmp_path / "upstream.secret"
    secret.write_text(UPSTREAM_PASSWORD + "\n")
    secret.chmod(0o600)

    def make(start=True, **kw):
        up = Upstream(tls_files, secret, **kw)
        made.append(up)
        if start:
            up.start()
        return up

    yield make
    for up in made:
        up.stop()


@pytest.fixture
def upstream(upstream_factory):
    """STARTTLS + AUTH required, the way a provider's smarthost is."""
    return upstream_factory()


@pytest.fixture
def plain_upstream(upstream_factory):
    """No TLS, no AUTH."""
    return upstream_factory(tls=False, auth=False)


def have_swaks():
    return shutil.which("swaks") is not None


# ---------------------------------------------------------------------------
# DKIM: TXT records as `outpostctl dkim keygen` / `dkim dns` print them


# "NAME. [TTL] IN TXT ( "..." "..." )"; the parentheses may span lines.
TXT_PAREN_RE = re.compile(r'^\s*(\S+)\s+(?:\d+\s+)?IN\s+TXT\s+\((.*?)\)', re.S | re.M)
# A one-line record without parentheses.
TXT_LINE_RE = re.compile(r'^\s*(\S+)\s+(?:\d+\s+)?IN\s+TXT\s+(".*)$', re.M)
QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_txt_records(text):
    """Zone-file TXT records in text -> {name (lower case, without the
    trailing dot): [the quoted strings]}, the first record of each name."""
    out = {}
    for rx in (TXT_PAREN_RE, TXT_LINE_RE):
        for m in rx.finditer(text):
            name = m.group(1).rstrip(".").lower()
            if name not in out:
                out[name] = QUOTED_RE.findall(m.group(2))
    return out


def txt_dnsfunc(records):
    """A dkimpy dnsfunc answering from {name: value (str or bytes, or a
    list of strings to join)}; unknown names have no record."""
    table = {}
    for name, v in records.items():
        if isinstance(v, list):
            v = "".join(v)
        table[name.rstrip(".").lower()] = v.encode() if isinstance(v, str) else v

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return table.get(n.rstrip(".").lower())
    return dnsfunc


# ---------------------------------------------------------------------------
# DNS: a small authoritative server for the daemon's lookups (dnslib)


class DNSTestServer:
    """UDP and TCP DNS on 127.0.0.1:self.port answering from self.records:
    {name: value}, the name without the trailing dot (any case). A value
    is a TXT record: str/bytes (split into 255-byte character-strings) or
    a list of them (one character-string each, longer ones split too);
    or a dict {qtype: [rdata, ...]} for other types ("TXT" values as
    above, "A"/"AAAA" addresses, "MX" (pref, host) pairs). A known name
    without the asked type answers NOERROR with no answer; an unknown
    name is NXDOMAIN; the value DNSTestServer.SERVFAIL answers SERVFAIL
    (a temporary failure). Every question lands in self.queries as
    (name, qtype)."""

    SERVFAIL = object()

    def __init__(self):
        self.records = {}
        self.queries = []
        self.lock = threading.Lock()
        self.servers = []
        self.port = None

    @property
    def address(self):
        """The value for `[server] dns_server`."""
        return f"127.0.0.1:{self.port}"

    def txt(self, name, value):
        self.records[name] = value

    def queried(self, name):
        n = name.rstrip(".").lower()
        with self.lock:
            return [q for q in self.queries if q[0] == n]

    @staticmethod
    def _strings(value):
        parts = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for p in parts:
            b = p.encode() if isinstance(p, str) else bytes(p)
            out.extend(b[i:i + 255] for i in range(0, len(b), 255))
            if not b:
                out.append(b"")
        return out

    def _lookup(self, name):
        table = {k.rstrip(".").lower(): v for k, v in dict(self.records).items()}
        return table.get(name)

    def resolve(self, request, handler):
        from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A
        reply = request.reply()
        q = request.q
        name = str(q.qname).rstrip(".").lower()
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        with self.lock:
            self.queries.append((name, qtype))
        value = self._lookup(name)
        if value is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if value is self.SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if not isinstance(value, dict):
            value = {"TXT": [value]}
        for rdata in value.get(qtype, []) if qtype != "ANY" else []:
            if qtype == "TXT":
                rd = TXT(self._strings(rdata))
            elif qtype == "A":
                rd = A(rdata)
            elif qtype == "AAAA":
                rd = AAAA(rdata)
            elif qtype == "MX":
                pref, host = rdata
                rd = MX(host, pref)
            else:
                continue
            reply.add_answer(RR(q.qname, q.qtype, rdata=rd, ttl=60))
        return reply

    def start(self):
        from dnslib.server import DNSLogger, DNSServer
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data",
                          prefix=False)
        last = None
        for _ in range(20):
            port = free_udp_port()
            try:
                udp = DNSServer(self, port=port, address="127.0.0.1", logger=quiet)
                try:
                    tcp = DNSServer(self, port=port, address="127.0.0.1", tcp=True,
                                    logger=quiet)
                except OSError:
                    udp.server.server_close()
                    raise
            except OSError as e:
                last = e
                continue
            self.port = port
            self.servers = [udp, tcp]
            for s in self.servers:
                s.start_thread()
            return self
        raise AssertionError(f"no free port for the test DNS server: {last}")

    def stop(self):
        for s in self.servers:
            s.server.shutdown()
            s.server.server_close()
            s.thread.join(timeout=5)
        self.servers = []


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dns_server():
    """A DNSTestServer, started; fill .records, give the daemon
    `[server] dns_server = <.address>`. Stopped at teardown."""
    srv = DNSTestServer().start()
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------
# Resource tests: clients from other loopback addresses, process status


def smtp_client_from(source, port, host="127.0.0.1", timeout=IO_TIMEOUT, read_greeting=True):
    """An SMTPClient whose connection comes from the local address source
    (e.g. "127.0.0.2": all of 127.0.0.0/8 is the loopback), so per-IP caps
    can be exercised apart from 127.0.0.1."""
    c = SMTPClient.__new__(SMTPClient)
    c.timeout = timeout
    c.sock = socket.create_connection((host, port), timeout=timeout,
                                      source_address=(source, 0))
    c.buf = b""
    c.tls = False
    c.ehlo_reply = None
    c.greeting = c.reply() if read_greeting else None
    return c


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM...); 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------
# A raw scripted upstream (RELIABILITY C1-C5, C8): the faults aiosmtpd
# cannot play. Added for test_matrix.py; nothing above depends on it.


STALL = "STALL"
CLOSE = "CLOSE"
FREEZE = "FREEZE"


class RawMessage:
    """One transaction the raw upstream answered at the dot."""

    def __init__(self, conn_no, mail_from, rcpt_tos, content, tls, accepted):
        self.conn_no = conn_no
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.content = content              # dot-unstuffed, CRLF kept
        self.tls = tls
        self.accepted = accepted            # the dot was answered 2xx
        self.at = time.time()


class RawConn:
    """The socket of one upstream connection, for callable actions."""

    def __init__(self, up, sock, no):
        self.up = up
        self.sock = sock
        self.no = no
        self.tls = False
        self.buf = b""
        self.sent = 0

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)
        self.sent += len(data)

    def stopping(self):
        return self.up.stopping.is_set()


class RawUpstream:
    """An SMTP server written on raw sockets that plays a script.

    script: {stage: action, or [action for connection 1, 2, ...]} (after
    the list, the normal answer). Stages: greeting, ehlo, helo, starttls,
    auth, mail, rcpt (or "rcpt:<addr>" for one address), data, body (after
    the first body line, before the dot), dot, rset, quit. Actions:
      None          the normal answer;
      str / bytes   sent verbatim (CRLF added to a str without one); at
                    "starttls" a reply starting with 220 starts TLS after
                    it, so b"220 Ready\\r\\n250 injected\\r\\n" injects;
      STALL         answer nothing more; read until the peer goes;
      CLOSE         close the connection at once;
      FREEZE        stop reading (the peer's writes block once the
                    socket buffers are full) until the test ends;
      callable(c)   c is a RawConn (c.send, c.stopping()); afterwards
                    the connection stalls as with STALL.
    tls_files=(cert, key): offer STARTTLS. auth: offer AUTH PLAIN and
    take any credentials. Records connections, commands [(conn, line,
    tls)], messages [RawMessage], plaintext_after_starttls [bytes]."""

    def __init__(self, script=None, tls_files=None, auth=False, password_file=None,
                 pipelining=False, port=None):
        self.script = dict(script or {})
        self.tls_files = tls_files
        self.auth = auth
        self.password_file = password_file
        self.pipelining = pipelining
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connections = 0
        self.commands = []
        self.messages = []
        self.closed_at = {}                 # conn no -> time the peer left
        self.plaintext_after_starttls = []
        self.threads = []
        self.socks = []
        self.lsock = None

    # -- control ----------------------------------------------------------
    def start(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for s in [self.lsock] + list(self.socks):
            try:
                s.close()
            except (OSError, AttributeError):
                pass
        for t in self.threads:
            t.join(timeout=5)

    def upstream_section(self, **extra):
        sec = {"address": f"127.0.0.1:{self.port}",
               "tls": "starttls" if self.tls_files else "none"}
        if self.tls_files:
            sec["tls_verify"] = "no"
        if self.auth:
            sec["username"] = UPSTREAM_USER
            sec["password_file"] = str(self.password_file)
        sec.update(extra)
        return sec

    def accepted(self):
        with self.lock:
            return [m for m in self.messages if m.accepted]

    def wait_accepted(self, n, timeout=10.0):
        return wait_until(lambda: len(self.accepted()) >= n and self.accepted(), timeout,
                          f"{n} message(s) accepted by the raw upstream")

    def conn_commands(self, no):
        with self.lock:
            return [(line, tls) for n, line, tls in self.commands if n == no]

    # -- the server -------------------------------------------------------
    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                no = self.connections
                self.socks.append(sock)
            t = threading.Thread(target=self._serve, args=(sock, no), daemon=True)
            t.start()
            self.threads.append(t)

    def _action(self, stage, no):
        if stage not in self.script:
            return None
        a = self.script[stage]
        if isinstance(a, list):
            return a[no - 1] if no - 1 < len(a) else None
        return a

    def _readline(self, c):
        while b"\n" not in c.buf:
            if self.stopping.is_set():
                return None
            try:
                chunk = c.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            c.buf += chunk
        line, _, c.buf = c.buf.partition(b"\n")
        return line + b"\n"

    def _drain(self, c):
        """STALL: read and ignore until the peer goes or the test ends."""
        while not self.stopping.is_set():
            try:
                chunk = c.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return
            if not chunk:
                return

    def _play(self, c, stage, normal):
        """Run stage's action; True to go on, False to end the connection."""
        a = self._action(stage, c.no)
        if a is None:
            a = normal
        if a == STALL:
            self._drain(c)
            return False
        if a == CLOSE:
            return False
        if a == FREEZE:
            self.stopping.wait(60)
            return False
        if callable(a):
            try:
                a(c)
            except (OSError, ssl.SSLError):
                return False
            self._drain(c)
            return False
        if isinstance(a, str):
            a = a.encode()
            if not a.endswith(b"\n"):
                a += b"\r\n"
        c.send(a)
        return True

    def _serve(self, sock, no):
        c = RawConn(self, sock, no)
        sock.settimeout(0.2)
        try:
            self._session(c)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.closed_at[no] = time.time()
            try:
                c.sock.close()
            except OSError:
                pass

    def _ehlo_reply(self, c):
        kws = ["8BITMIME", "SIZE 104857600"]
        if self.pipelining:
            kws.append("PIPELINING")
        if self.tls_files and not c.tls:
            kws.append("STARTTLS")
        if self.auth:
            kws.append("AUTH PLAIN")
        lines = ["upstream.test"] + kws
        return "".join(f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n"
                       for i, l in enumerate(lines))

    def _session(self, c):
        if not self._play(c, "greeting", "220 upstream.test ESMTP raw"):
            return
        mail_from, rcpts = None, []
        while not self.stopping.is_set():
            raw = self._readline(c)
            if raw is None:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            with self.lock:
                self.commands.append((c.no, line, c.tls))
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                ok = self._play(c, "ehlo", self._ehlo_reply(c))
            elif verb == "HELO":
                ok = self._play(c, "helo", "250 upstream.test")
            elif verb == "STARTTLS":
                a = self._action("starttls", c.no)
                reply = a if a is not None else "220 2.0.0 Ready to start TLS"
                if isinstance(reply, str):
                    reply = reply.encode() + (b"" if reply.endswith("\n") else b"\r\n")
                if isinstance(reply, bytes) and reply.startswith(b"220"):
                    c.send(reply)
                    if c.buf:
                        with self.lock:
                            self.plaintext_after_starttls.append(c.buf)
                        c.buf = b""
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(str(self.tls_files[0]), str(self.tls_files[1]))
                    c.sock.settimeout(10)
                    c.sock = ctx.wrap_socket(c.sock, server_side=True)
                    c.sock.settimeout(0.2)
                    c.tls = True
                    ok = True
                else:
                    ok = self._play(c, "starttls", reply)
            elif verb == "AUTH":
                if len(line.split()) < 3:
                    c.send(b"334 \r\n")
                    if self._readline(c) is None:
                        return
                ok = self._play(c, "auth", "235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                m = re.search(r"<([^>]*)>", line)
                mail_from, rcpts = (m.group(1) if m else ""), []
                ok = self._play(c, "mail", "250 2.1.0 OK")
            elif verb == "RCPT":
                m = re.search(r"<([^>]*)>", line)
                addr = m.group(1) if m else ""
                stage = f"rcpt:{addr.lower()}"
                a = self._action(stage, c.no)
                if a is None:
                    stage = "rcpt"
                    a = self._action(stage, c.no)
                if a is None or (isinstance(a, str) and a.startswith("2")):
                    rcpts.append(addr)
                ok = self._play(c, stage, "250 2.1.5 OK")
            elif verb == "DATA":
                a = self._action("data", c.no)
                ok = self._play(c, "data", "354 End data with <CR><LF>.<CR><LF>")
                if ok and (a is None or (isinstance(a, str) and a.startswith("354"))):
                    ok = self._body(c, mail_from, rcpts)
                mail_from, rcpts = None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                ok = self._play(c, "rset", "250 2.0.0 OK")
            elif verb == "QUIT":
                self._play(c, "quit", "221 2.0.0 Bye")
                return
            elif verb == "NOOP":
                ok = self._play(c, "noop", "250 2.0.0 OK")
            else:
                ok = self._play(c, "unknown", "500 5.5.2 unrecognized command")
            if not ok:
                return

    def _body(self, c, mail_from, rcpts):
        lines = []
        first = True
        while True:
            raw = self._readline(c)
            if raw is None:
                return False
            if raw == b".\r\n":
                break
            if first:
                first = False
                if not self._play(c, "body", b""):
                    return False
            lines.append(raw[1:] if raw.startswith(b".") else raw)
        content = b"".join(lines)
        a = self._action("dot", c.no)
        accepted = a is None or (isinstance(a, (str, bytes)) and
                                 (a[:1] in ("2", b"2")))
        with self.lock:
            self.messages.append(RawMessage(c.no, mail_from, list(rcpts), content, c.tls,
                                            accepted))
        return self._play(c, "dot", "250 2.0.0 OK raw-accepted")


@pytest.fixture
def raw_upstream_factory(tls_files, tmp_path):
    """make(script={...}, start=True, **kw) -> RawUpstream; stopped at teardown."""
    made = []
    secret = tmp_path / "raw-upstream.secret"
    secret.write_text(UPSTREAM_PASSWORD + "\n")
    secret.chmod(0o600)

    def make(script=None, start=True, tls=False, **kw):
        up = RawUpstream(script, tls_files=tls_files if tls else None,
                         password_file=secret, **kw)
        made.append(up)
        if start:
            up.start()
        return up

    yield make
    for up in made:
        up.stop()


# ---------------------------------------------------------------------------
# Submitting in bulk


def submit_many(d, client_factory, tls_ctx, n, rcpt="bob@example.net", prefix="m"):
    """n messages in one session, back to back; returns their queue ids."""
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    qids = []
    for i in range(n):
        assert c.cmd(f"MAIL FROM:<alice@example.com>").code == 250
        assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(simple_message(subject=f"{prefix}{i}")))
        qids.append(queue_id(c.reply()))
    c.cmd("QUIT")
    return qids
