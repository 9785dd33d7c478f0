"""Storage faults against the real daemon (RELIABILITY.md Q4).

The queue lives on a small tmpfs that the test fills up: SQLite then gets
a real ENOSPC while writing the WAL, and the client must hear 452 4.3.1,
never 250, and the daemon must keep serving once space is back.
Needs root for mount(8); skipped elsewhere.
"""
import email
import os
import sqlite3
import subprocess

import pytest

from conftest import USERS, simple_message, queue_id


def _mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(path)], capture_output=True, text=True)
    return p.returncode == 0


def _fill(path):
    """Write a filler file until the file system is full."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    f = open(filler, "wb")
    try:
        for _ in range(10000):          # bounded: 640 MB at most
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass
    try:
        f.close()
    except OSError:
        pass                            # what the full disk refused is still buffered
    return filler


def test_Q4_disk_full_gives_452_and_daemon_keeps_running(daemon_factory, client_factory,
                                                         tls_ctx, tmp_path):
    state = tmp_path / "d0" / "state"
    if os.geteuid() != 0 or not _mount_tmpfs(state, "4m"):
        pytest.skip("needs root and mount -t tmpfs")
    try:
        d = daemon_factory(config={"server": {"state_dir": str(state)}})
        user, password, sender = "alice", USERS["alice"][0], "alice@example.com"

        c = client_factory(d.port)
        c.login(tls_ctx, user, password)
        r = c.mail_transaction(sender, ["bob@example.net"], simple_message(subject="before"))
        assert r.code == 250, r
        d.wait_maildir(1)

        filler = _fill(state)
        # Larger than anything the WAL has held so far, so it must grow.
        big = simple_message(subject="while full", body=("x" * 76 + "\n") * 4000)
        r = c.mail_transaction(sender, ["bob@example.net"], big)
        assert r.code == 452 and r.lines[-1].startswith("452 4.3.1"), r
        assert "queued" not in str(r)
        d.wait_log(r"queue commit failed \(storage full\)")

        filler.unlink()
        r = c.cmd("RSET")
        assert r.code == 250, r
        r = c.mail_transaction(sender, ["bob@example.net"], simple_message(subject="after"))
        assert r.code == 250, r
        qid = queue_id(r)
        d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=sent")
        subjects = sorted(email.message_from_bytes(m)["Subject"] for m in d.maildir_messages())
        assert subjects == ["after", "before"], subjects
        c.close()
        d.stop()
        # The queue survived the full disk intact.
        con = sqlite3.connect(f"file:{state / 'queue.db'}?mode=ro", uri=True, timeout=5)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            statuses = [r[0] for r in con.execute("SELECT status FROM recipients ORDER BY id")]
        finally:
            con.close()
        # Exactly the two accepted messages were ever queued.
        assert statuses == ["sent", "sent"], statuses
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)
