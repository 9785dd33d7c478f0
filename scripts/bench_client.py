"""
scripts/bench_client.py - the bench's own SMTP clients (Python standard
library only); scripts/bench.py runs them, smtp-source does the bulk load.

  bench_client.py pace --port P --rate R --duration SEC [-c C] [-s SIZE]
                       --out FILE.json
      open-loop acceptance latency: message i is due at start + i/R, for
      SEC seconds, and goes out over the first of C connections that is
      free (plain SMTP, PIPELINING for MAIL/RCPT/DATA). Records, per
      message, the time from sending the final dot to reading the 250; a
      message that could not start within 100 ms of its due time (every
      connection busy) counts as late, and its start lag is recorded, so a
      slow server shows as late starts rather than as a lower offered rate.

  bench_client.py hold --port P -n N
      opens N connections, reads each one's 220, prints "held N" and holds
      them all until stdin is closed.
"""

import argparse
import asyncio
import json
import math
import os
import socket
import sys
import time

FROM = "bench@example.com"
RCPT = "rcpt@example.net"


class SMTPError(Exception):
    pass


async def read_reply(reader):
    """One (possibly multi-line) reply -> (code, text)."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPError(f"connection closed (after {lines!r})")
        line = line.rstrip(b"\r\n").decode("utf-8", "replace")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), "\n".join(lines)


def make_message(i, size):
    """A plain text message of about size bytes, CRLF, dot-stuffed, without
    the final dot."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    head = (f"From: Bench <{FROM}>\r\nTo: <{RCPT}>\r\nSubject: bench message {i}\r\n"
            f"Date: {date}\r\nMessage-ID: <bench.{os.getpid()}.{i}@example.com>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen.\r\n"
    body = []
    left = max(size - len(head), len(line))
    n = 0
    while left > 0:
        body.append(f"{n:05d} {line}")
        left -= len(body[-1])
        n += 1
    return (head + "".join(body)).encode()


LATE = 0.100      # a start more than this after its due time is late


class Pace:
    def __init__(self, args):
        self.args = args
        self.next = 0
        self.total = max(1, int(args.rate * args.duration))
        self.latencies = []
        self.lags = []
        self.accepted = 0
        self.failed = []
        self.t0 = 0.0

    async def connection(self):
        a = self.args
        reader, writer = await asyncio.open_connection(a.host, a.port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            code, text = await read_reply(reader)
            if code != 220:
                raise SMTPError(f"greeting: {text}")
            writer.write(b"EHLO bench.test\r\n")
            code, text = await read_reply(reader)
            if code != 250 or "PIPELINING" not in text.upper():
                raise SMTPError(f"EHLO (PIPELINING needed): {text}")
            while self.next < self.total:
                i = self.next
                self.next += 1
                due = self.t0 + i / a.rate
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
                self.lags.append(max(0.0, time.perf_counter() - due))
                data = make_message(i, a.size)
                writer.write(f"MAIL FROM:<{FROM}>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode())
                replies = [await read_reply(reader) for _ in range(3)]
                if [r[0] for r in replies] != [250, 250, 354]:
                    self.failed.append(" | ".join(r[1] for r in replies))
                    writer.write(b"RSET\r\n")
                    await read_reply(reader)
                    continue
                writer.write(data)
                await writer.drain()
                t = time.perf_counter()
                writer.write(b".\r\n")
                code, text = await read_reply(reader)
                self.latencies.append(time.perf_counter() - t)
                if code == 250:
                    self.accepted += 1
                else:
                    self.failed.append(text)
            writer.write(b"QUIT\r\n")
            await read_reply(reader)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def run(self):
        self.t0 = time.perf_counter() + 0.2      # every connection greeted by then
        await asyncio.gather(*(self.connection() for _ in range(self.args.c)))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def ms(v):
    return round(v * 1000, 3) if v is not None else None


def cmd_pace(args):
    p = Pace(args)
    try:
        asyncio.run(p.run())
    except (OSError, SMTPError) as e:
        p.failed.append(f"connection: {e}")
    elapsed = time.perf_counter() - p.t0
    lat = sorted(p.latencies)
    lags = sorted(p.lags)
    result = {
        "rate": args.rate, "duration": args.duration, "connections": args.c,
        "size": len(make_message(0, args.size)),
        "offered": p.total, "sent": len(p.latencies), "accepted": p.accepted,
        "failed": len(p.failed) + (p.total - p.next),
        "first_failure": p.failed[0] if p.failed else None,
        "elapsed_s": round(elapsed, 3),
        "achieved_per_s": round(p.accepted / elapsed, 1) if elapsed > 0 else None,
        "latency_p50_ms": ms(percentile(lat, 50)), "latency_p99_ms": ms(percentile(lat, 99)),
        "latency_max_ms": ms(lat[-1] if lat else None),
        "late": sum(1 for x in lags if x > LATE),
        "start_lag_p99_ms": ms(percentile(lags, 99)),
        "start_lag_max_ms": ms(lags[-1] if lags else None),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    if p.failed:
        print(f"bench_client: {len(p.failed)} failed; first: {p.failed[0]}", file=sys.stderr)
    return 0 if not p.failed else 1


async def hold(args):
    conns = []
    failed = 0
    first = None

    async def one():
        nonlocal failed, first
        try:
            reader, writer = await asyncio.open_connection(args.host, args.port)
            code, text = await asyncio.wait_for(read_reply(reader), 30)
            if code != 220:
                raise SMTPError(text)
            conns.append(writer)
        except (OSError, SMTPError, asyncio.TimeoutError) as e:
            failed += 1
            first = first or repr(e)
    for i in range(0, args.n, 250):       # in batches: the listen backlog is finite
        await asyncio.gather(*(one() for _ in range(min(250, args.n - i))))
    print(f"held {len(conns)}", flush=True)
    if failed:
        print(f"bench_client: {failed} connection(s) failed; first: {first}", file=sys.stderr)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for w in conns:
        w.close()
    return 0 if not failed else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pace")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, required=True, help="messages per second offered")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("-c", type=int, default=10, help="connections")
    p.add_argument("-s", "--size", type=int, default=2048)
    p.add_argument("--out", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("-n", type=int, required=True)
    args = ap.parse_args()
    if args.cmd == "pace":
        if args.rate <= 0 or args.duration <= 0 or args.c < 1 or args.size < 1:
            ap.error("--rate, --duration, -c and -s must be positive")
        return cmd_pace(args)
    return asyncio.run(hold(args))


if __name__ == "__main__":
    sys.exit(main())
