"""
The systemd units, the sysusers.d/tmpfiles.d snippets and `make install`,
checked offline: no running systemd and no running daemon.

  - `make install DESTDIR=D prefix=/usr sysconfdir=/etc localstatedir=/var`
    from the build directory (the one holding $OUTPOSTD) lays out the
    binaries, the example config, the units with those paths in them, the
    snippets, the docs and the man pages (when the tree has any);
  - `systemd-analyze security --offline=yes` rates the installed
    outpost.service at most MAX_EXPOSURE ("OK");
  - `systemd-analyze verify --root` finds nothing to say about either unit
    (their commands must exist in the root, so it is the install tree,
    completed with the host's targets);
  - `systemd-sysusers --root` and `systemd-tmpfiles --create --root` make
    the outpost user and its directories;
  - the installed outpostd accepts the installed example config once the
    files it names exist;
  - a second make install keeps an edited config; make uninstall removes
    everything else (and the config too while it is the unedited example);
  - the installed outpostd, started the way the unit starts it (as user
    outpost with CAP_NET_BIND_SERVICE only, no new privileges, under the
    unit's system call filter through tests/sandbox_exec.py), with a
    config made as README's walkthrough makes it, relays a DKIM-signed
    message to an upstream with STARTTLS and AUTH, reloads, and stops.

Skipped when systemd-analyze (or the other tool a test needs) is missing,
or when $OUTPOSTD is not in a configured build directory.
"""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import (ALICE_PW, DAEMON_USER, OUTPOSTD, REPO, SMTPClient, free_port,
                      give_to_daemon, make_cert, simple_message, wait_until)

MAX_EXPOSURE = 2.0
INSTALL_DIRS = ["prefix=/usr", "sysconfdir=/etc", "localstatedir=/var"]
BUILD = Path(OUTPOSTD).resolve().parent
SCORE_RE = re.compile(r"Overall exposure level for outpost\.service: ([0-9.]+) (\w+)")


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def make(dest, *targets):
    """make TARGETS in the build directory, installing under dest"""
    r = subprocess.run(["make", "-s", *targets, f"DESTDIR={dest}", *INSTALL_DIRS],
                       cwd=BUILD, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"make {' '.join(targets)}:\n{r.stdout}\n{r.stderr}"
    return r


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.is_file() or p.is_symlink())


def find_one(root, pattern):
    hits = sorted(Path(root).glob(pattern))
    assert len(hits) == 1, f"{pattern} under {root}: {hits}"
    return hits[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """one make install into a fresh DESTDIR, shared by the read-only checks"""
    if not (BUILD / "Makefile").is_file():
        pytest.skip(f"{BUILD} is not a configured build directory")
    dest = tmp_path_factory.mktemp("destdir")
    make(dest, "install")
    return dest


def unit(dest, name):
    return find_one(dest, f"**/systemd/system/{name}")


def test_install_layout(installed):
    d = installed
    for f in ("usr/sbin/outpostd", "usr/bin/outpostctl"):
        assert os.access(d / f, os.X_OK), f
    conf = d / "etc/outpost/outpost.conf"
    assert conf.read_bytes() == (REPO / "conf/outpost.conf").read_bytes()
    assert (d / "usr/share/doc/outpost/examples/outpost.conf").is_file()
    assert (d / "usr/share/doc/outpost/examples/users.example").is_file()
    assert (d / "usr/share/doc/outpost/SYSTEMD.md").is_file()
    assert find_one(d, "**/sysusers.d/outpost.conf").read_text() == \
        (REPO / "systemd/outpost.sysusers").read_text()
    assert find_one(d, "**/tmpfiles.d/outpost.conf").read_text() == \
        (REPO / "systemd/outpost.tmpfiles").read_text()
    assert unit(d, "outpost.socket").read_text() == (REPO / "systemd/outpost.socket").read_text()
    # the paths given to make install, not those of configure, are in the unit
    service = unit(d, "outpost.service").read_text()
    assert not re.search(r"@\w+@", service), "unsubstituted @name@ in outpost.service"
    assert "ExecStart=/usr/sbin/outpostd -c /etc/outpost/outpost.conf -f" in service
    assert "ExecReload=/usr/bin/outpostctl -c /etc/outpost/outpost.conf reload" in service
    # man pages, once the tree has them
    for page in sorted((REPO / "man").glob("*.[1-8]")) if (REPO / "man").is_dir() else []:
        section = page.suffix[1:]
        assert (d / f"usr/share/man/man{section}/{page.name}").is_file(), page.name


def test_security_score(installed):
    need("systemd-analyze")
    service = unit(installed, "outpost.service")
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(service)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = SCORE_RE.search(r.stdout)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    assert score <= MAX_EXPOSURE and m.group(2) == "OK", r.stdout
    # every directive was understood (a typo would be ignored with a warning)
    assert "Unknown" not in r.stderr and "ignoring" not in r.stderr, r.stderr


def test_units_verify(installed, tmp_path):
    """systemd-analyze verify in a root made of the install tree: the commands
    the units run exist there, the host lends the targets they order
    against, and a merged /usr like the host's"""
    need("systemd-analyze")
    host_units = Path("/usr/lib/systemd/system")
    if not (host_units / "sysinit.target").is_file():
        pytest.skip("no systemd targets in /usr/lib/systemd/system to verify against")
    root = tmp_path / "root"
    shutil.copytree(installed / "usr", root / "usr", symlinks=True)
    shutil.copytree(installed / "etc", root / "etc", symlinks=True)
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for name in ("outpost.service", "outpost.socket"):
        shutil.copy(unit(installed, name), units / name)
    for f in list(host_units.glob("*.target")) + list(host_units.glob("*.slice")):
        if not (units / f.name).exists():
            shutil.copy(f, units / f.name, follow_symlinks=True)
    for d in ("lib", "bin", "sbin"):
        if not (root / d).exists():
            (root / d).symlink_to(f"usr/{d}")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}",
                        str(units / "outpost.service"), str(units / "outpost.socket")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


def test_sysusers_tmpfiles(installed, tmp_path):
    need("systemd-sysusers")
    need("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root chowns: needs root")
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    r = subprocess.run(["systemd-sysusers", f"--root={root}",
                        str(find_one(root, "**/sysusers.d/outpost.conf"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    groups = {l.split(":")[0]: l.split(":") for l in (root / "etc/group").read_text().splitlines()}
    assert "outpost" in passwd and "outpost" in groups, passwd
    _, _, uid, gid, gecos, home, shell = passwd["outpost"]
    assert (gecos, home) == ("outpost SMTP relay", "/var/lib/outpost")
    assert shell.endswith("nologin")
    assert int(uid) < 1000 and gid == groups["outpost"][2]
    r = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}",
                        str(find_one(root, "**/tmpfiles.d/outpost.conf"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = (root / "var/lib/outpost").stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and (st.st_uid, st.st_gid) == (int(uid), int(gid))
    st = (root / "etc/outpost").stat()
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (0, int(gid))


def test_installed_daemon_checks_example_config(installed, tmp_path):
    d = installed
    outpostd, outpostctl = d / "usr/sbin/outpostd", d / "usr/bin/outpostctl"
    conf = d / "etc/outpost/outpost.conf"
    # As installed it names certificates, keys and secrets nobody has made
    # yet: those are its only errors.
    r = subprocess.run([outpostd, "-c", conf, "-n"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if not l.startswith("outpostd: ")]
    assert errors, r.stderr
    for line in errors:
        assert re.search(r": \S+ /etc/outpost/\S+: No such file or directory$", line), line
    # With every file it names in place (under tmp_path), it is accepted.
    etc = tmp_path / "etc"
    make_cert(etc / "tls")             # tls/cert.pem, tls/key.pem
    (etc / "dkim").mkdir()
    for name in ("upstream-main.secret", "upstream-backup.secret"):
        (etc / name).write_text("secret\n")
        (etc / name).chmod(0o600)
    (etc / "users").write_text("")
    text = conf.read_text().replace("/etc/outpost/", f"{etc}/")
    text = text.replace("/var/lib/outpost", str(tmp_path / "state"))
    conf2 = tmp_path / "outpost.conf"
    conf2.write_text(text)
    for sel, typ in (("s2026", "rsa"), ("e2026", "ed25519")):
        r = subprocess.run([outpostctl, "-c", conf2, "dkim", "keygen", "example.com", sel,
                            "--type", typ, "--dir", etc / "dkim"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([outpostd, "-c", conf2, "-n"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_reinstall_keeps_edited_config_and_uninstall_cleans(tmp_path):
    if not (BUILD / "Makefile").is_file():
        pytest.skip(f"{BUILD} is not a configured build directory")
    dest = tmp_path / "dest"
    # untouched: uninstall leaves no file at all
    make(dest, "install")
    make(dest, "uninstall")
    assert files_under(dest) == []
    # edited: kept by the next install, and by uninstall
    make(dest, "install")
    conf = dest / "etc/outpost/outpost.conf"
    edited = conf.read_text().replace("hostname = relay.example.com", "hostname = mx.office.test")
    conf.write_text(edited)
    r = make(dest, "install")
    assert "kept" in r.stdout
    assert conf.read_text() == edited
    make(dest, "uninstall")
    assert files_under(dest) == ["etc/outpost/outpost.conf"]
    assert conf.read_text() == edited


@pytest.mark.skipif(os.geteuid() != 0, reason="starts the daemon as user outpost: needs root")
def test_installed_service_relays_as_the_unit_runs_it(installed, tmp_path, upstream, tls_ctx,
                                                      tls_files, users_file):
    """What README's walkthrough ends with, without systemd as PID 1."""
    need("setpriv")
    if os.uname().machine != "x86_64":
        pytest.skip("sandbox_exec.py builds an x86-64 filter")
    d = installed
    # The installed binaries, copied where the outpost account may reach
    # them (the install tree is private to root here).
    (tmp_path / "sbin").mkdir()
    outpostd = Path(shutil.copy2(d / "usr/sbin/outpostd", tmp_path / "sbin"))
    outpostctl = d / "usr/bin/outpostctl"
    etc, state = tmp_path / "etc", tmp_path / "state"
    (etc / "tls").mkdir(parents=True)
    shutil.copy(tls_files[0], etc / "tls" / "cert.pem")
    shutil.copy(tls_files[1], etc / "tls" / "key.pem")
    shutil.copy(users_file, etc / "users")
    port = free_port()
    conf = etc / "outpost.conf"
    section = "".join(f"{k} = {v}\n" for k, v in upstream.upstream_section().items())
    conf.write_text(f"""[server]
hostname = relay.example.com
state_dir = {state}
users_file = users
metrics_listen = no
check_interval = 0

[listen submission]
address = 127.0.0.1:{port}
tls = starttls
cert = tls/cert.pem
key = tls/key.pem

[domain example.com]
upstream = provider
dkim_key = s2026:dkim/example.com.s2026.pem

[upstream provider]
{section}""")
    # outpostctl as root gives the key to the daemon's account.
    r = subprocess.run([outpostctl, "-c", conf, "dkim", "keygen", "example.com", "s2026",
                        "--dir", etc / "dkim"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "owner outpost" in r.stdout, r.stdout + r.stderr
    give_to_daemon(tmp_path)
    state.mkdir(mode=0o700)            # StateDirectory=outpost, mode 0700
    give_to_daemon(state)

    unit_text = unit(d, "outpost.service").read_text()
    for line in ("User=outpost", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "NoNewPrivileges=yes", "SystemCallFilter=@system-service"):
        assert line in unit_text
    as_unit = ["setpriv", f"--reuid={DAEMON_USER}", f"--regid={DAEMON_USER}", "--init-groups",
               "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
               "--bounding-set=-all,+net_bind_service", "--no-new-privs",
               str(REPO / "tests" / "sandbox_exec.py")]
    # In a sanitizer build LeakSanitizer inspects the process at exit with
    # ptrace, which the unit's filter forbids as it should: leaks are the
    # other tests' business.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    r = subprocess.run(as_unit + [str(outpostd), "-c", str(conf), "-n"],   # ExecStartPre
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    log = tmp_path / "outpostd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(as_unit + [str(outpostd), "-c", str(conf), "-f"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    try:
        def up():
            assert proc.poll() is None, log.read_text()
            try:
                return SMTPClient(port)
            except OSError:
                return None
        c = wait_until(up, 15, "the installed outpostd")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        uid = str(__import__("pwd").getpwnam(DAEMON_USER).pw_uid)
        assert fields["Uid"].split() == [uid] * 4, status
        assert fields["NoNewPrivs"].strip() == "1"
        assert fields["Seccomp"].strip() == "2"
        assert int(fields["CapEff"], 16) == 1 << 10        # CAP_NET_BIND_SERVICE only

        c.login(tls_ctx, "alice", ALICE_PW)
        r = c.mail_transaction("alice@example.com", ["bob@example.net"],
                               simple_message(mail_from="alice@example.com",
                                              subject="through the installed service"))
        c.close()
        assert r.code == 250, r
        got = upstream.wait_messages(1, timeout=20)[0]
        assert got.tls and got.auth_login
        assert b"DKIM-Signature: v=1; a=rsa-sha256" in got.content
        assert b"s=s2026" in got.content

        # ExecReload: outpostctl as root, the daemon reads everything again
        # as outpost.
        r = subprocess.run([outpostctl, "-c", conf, "reload"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("reloaded: "), r.stdout + r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0, log.read_text()
    assert "stopped" in log.read_text()
