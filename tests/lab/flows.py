#!/usr/bin/env python3
"""Many forwarded UDP flows for the replication scenarios (replication.py), run inside a
namespace with `ip netns exec NS python3 flows.py MODE ...`.

Why real packets: the flows cross the Master like any user's traffic (forward, conntrack,
SNAT to the WAN VIP with random ports), so the entries fwhad replicates are exactly the ones
the kernel makes for real flows, and the lab needs nothing but Python.

Flow k (k >= 0) is  CLIENT:(SPORT0 + k // PORTS) -> SERVER:(DPORT0 + k % PORTS)  over UDP, with
SPORT0 = 10000 (below the ephemeral range, so traffic.py's sockets never collide), DPORT0 =
9100 and PORTS = --ports (default 64). One client socket bound to a source port sends the
flows of all PORTS destination ports, so 20k flows need ~300 sockets (the lab's RLIMIT_NOFILE
is 20000), and every reply the server echoes lands on an open socket: no ICMP port
unreachable noise crosses the firewall. Flow numbers are unique for k < 22000 * PORTS.

echo   (server) one UDP socket per port DPORT0 .. DPORT0+PORTS-1, echoing every datagram to
       its source (the SNAT address and port), so entries see their reply like real flows.
       The echo is the datagram's first 64 bytes + b"|ADDR:PORT", the source the server saw,
       so a client can tell whether its NAT mapping changed (e.g. across a failover).
burst  (client) flows k0 .. k0+count-1, `--packets` datagrams each, as fast as possible (or at
       --rate flows/s); keeps the sockets open --hold seconds (so late echoes find them),
       then prints one JSON line: flows, seconds, flows_per_s, send_errors.
churn  (client) new flows from k0 on at --rate flows/s until --duration or SIGTERM; a socket
       is closed --linger seconds after its last flow. Writes --out (JSON) at the end: flows
       created (k0 .. k0+flows-1), seconds.
flow   (client) one flow (--sport, --dport): a datagram every --warmup-interval s for
       --warmup s (so the kernel marks it ASSURED: a UDP entry still active after 2 s with
       replies becomes a "stream"), then one every --interval s until --duration (0 = warmup
       only) or SIGTERM. Writes --out (JSON) at the end: every send time and every echo
       (time.time(), the source the server saw); --ready-file after the warmup.
All modes stop on SIGTERM/SIGINT and within their --duration/--max-seconds bound.
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time

SERVER_IP = "198.51.100.10"
SPORT0 = 10000
SPORT_COUNT = 22000          # 10000 .. 31999, below ip_local_port_range (32768)
DPORT0 = 9100

stop = False


def _on_signal(_signum, _frame):
    global stop
    stop = True


def install_stop_handlers():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def flow_ports(k, ports):
    return SPORT0 + k // ports, DPORT0 + k % ports


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def new_socket(sport):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    s.bind(("0.0.0.0", sport))
    s.setblocking(False)
    return s


def cmd_echo(a):
    install_stop_handlers()
    raise_nofile()
    sel = selectors.DefaultSelector()
    socks = []
    for p in range(DPORT0, DPORT0 + a.ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((a.addr, p))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    if a.ready_file:
        write_json(a.ready_file, {"ready": True})
    echoed = errors = 0
    deadline = time.monotonic() + a.duration
    while not stop and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            for _ in range(256):
                try:
                    data, src = s.recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    errors += 1
                    break
                try:
                    s.sendto(data[:64] + b"|%s:%d" % (src[0].encode(), src[1]), src)
                    echoed += 1
                except OSError:
                    errors += 1
    doc = {"mode": "echo", "echoed": echoed, "errors": errors}
    if a.out:
        write_json(a.out, doc)
    print(json.dumps(doc), flush=True)
    return 0


def cmd_burst(a):
    install_stop_handlers()
    raise_nofile()
    socks = {}
    errs = collections.Counter()
    payload = b"fwha-lab-burst"
    t0 = time.monotonic()
    sent_flows = 0
    interval = 1.0 / a.rate if a.rate > 0 else 0.0
    deadline = t0 + a.max_seconds
    for i in range(a.count):
        if stop or time.monotonic() > deadline:
            break
        k = a.k0 + i
        sport, dport = flow_ports(k, a.ports)
        s = socks.get(sport)
        if s is None:
            try:
                s = socks[sport] = new_socket(sport)
            except OSError as e:
                errs[errno.errorcode.get(e.errno, str(e.errno))] += 1
                continue
        for _ in range(a.packets):
            try:
                s.sendto(payload, (a.server, dport))
            except BlockingIOError:
                errs["EAGAIN"] += 1
            except OSError as e:
                errs[errno.errorcode.get(e.errno, str(e.errno))] += 1
        sent_flows += 1
        if interval:
            due = t0 + (i + 1) * interval
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    t1 = time.monotonic()
    end = time.monotonic() + a.hold
    while not stop and time.monotonic() < end:
        time.sleep(0.05)
    for s in socks.values():
        s.close()
    doc = {"mode": "burst", "k0": a.k0, "flows": sent_flows, "seconds": round(t1 - t0, 3),
           "flows_per_s": round(sent_flows / max(t1 - t0, 1e-6)), "sockets": len(socks),
           "send_errors": dict(errs)}
    print(json.dumps(doc), flush=True)
    return 0


def cmd_churn(a):
    install_stop_handlers()
    raise_nofile()
    payload = b"fwha-lab-churn"
    errs = collections.Counter()
    open_socks = collections.deque()   # (close_at, sock)
    socks = {}
    t0 = time.monotonic()
    deadline = t0 + a.duration
    k = a.k0
    interval = 1.0 / a.rate
    n = 0
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        due = t0 + n * interval
        if now < due:
            time.sleep(min(due - now, 0.01))
            continue
        if now - due > 0.5:            # stalled: skip ahead rather than burst
            n = int((now - t0) / interval)
            continue
        sport, dport = flow_ports(k, a.ports)
        s = socks.get(sport)
        if s is None:
            try:
                s = socks[sport] = new_socket(sport)
            except OSError as e:
                errs[errno.errorcode.get(e.errno, str(e.errno))] += 1
                k += 1
                n += 1
                continue
        try:
            s.sendto(payload, (a.server, dport))
        except OSError as e:
            errs[errno.errorcode.get(e.errno, str(e.errno))] += 1
        if dport == DPORT0 + a.ports - 1:   # this socket's last flow
            open_socks.append((now + a.linger, sport))
        while open_socks and open_socks[0][0] <= now:
            _, sp = open_socks.popleft()
            socks.pop(sp).close()
        k += 1
        n += 1
    t1 = time.monotonic()
    for s in socks.values():
        s.close()
    doc = {"mode": "churn", "k0": a.k0, "flows": k - a.k0, "seconds": round(t1 - t0, 3),
           "send_errors": dict(errs)}
    if a.out:
        write_json(a.out, doc)
    print(json.dumps(doc), flush=True)
    return 0


def cmd_flow(a):
    install_stop_handlers()
    s = new_socket(a.sport)
    sends, echoes = [], []
    t0 = time.monotonic()
    end = t0 + max(a.duration, a.warmup)
    next_at = t0
    ready = False

    def drain():
        while True:
            try:
                data = s.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:            # e.g. ICMP error queued on the socket
                return
            _, _, seen = data.rpartition(b"|")
            echoes.append([time.time(), seen.decode(errors="replace")])

    while not stop:
        now = time.monotonic()
        if now >= end and ready:
            break
        if not ready and now - t0 >= a.warmup:
            ready = True
            if a.ready_file:
                write_json(a.ready_file, {"ready": True, "sends": sends})
            if a.duration <= a.warmup:
                break
        if now >= next_at:
            try:
                s.sendto(b"fwha-lab-flow", (a.server, a.dport))
                sends.append(time.time())
            except OSError:
                pass
            next_at += a.warmup_interval if now - t0 < a.warmup else a.interval
        drain()
        time.sleep(0.02)
    time.sleep(0.2)                    # the last echo finds the socket open
    drain()
    s.close()
    doc = {"mode": "flow", "sport": a.sport, "dport": a.dport, "sends": sends,
           "echoes": echoes}
    if a.out:
        write_json(a.out, doc)
    print(json.dumps({"mode": "flow", "sends": len(sends), "echoes": len(echoes)}), flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ports", type=int, default=64)
    common.add_argument("--out")
    e = sub.add_parser("echo", parents=[common])
    e.add_argument("--addr", default=SERVER_IP)
    e.add_argument("--duration", type=float, default=300)
    e.add_argument("--ready-file")
    b = sub.add_parser("burst", parents=[common])
    b.add_argument("--server", default=SERVER_IP)
    b.add_argument("--k0", type=int, default=0)
    b.add_argument("--count", type=int, required=True)
    b.add_argument("--packets", type=int, default=1)
    b.add_argument("--rate", type=float, default=0.0, help="flows/s; 0 = as fast as possible")
    b.add_argument("--hold", type=float, default=1.0)
    b.add_argument("--max-seconds", type=float, default=60.0)
    c = sub.add_parser("churn", parents=[common])
    c.add_argument("--server", default=SERVER_IP)
    c.add_argument("--k0", type=int, default=0)
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--duration", type=float, default=60.0)
    c.add_argument("--linger", type=float, default=1.0)
    f = sub.add_parser("flow", parents=[common])
    f.add_argument("--server", default=SERVER_IP)
    f.add_argument("--sport", type=int, required=True)
    f.add_argument("--dport", type=int, required=True)
    f.add_argument("--warmup", type=float, default=3.0)
    f.add_argument("--warmup-interval", type=float, default=0.5)
    f.add_argument("--interval", type=float, default=4.0)
    f.add_argument("--duration", type=float, default=0.0)
    f.add_argument("--ready-file")
    a = ap.parse_args(argv)
    if a.mode != "echo" and a.ports * SPORT_COUNT <= 0:
        ap.error("--ports must be positive")
    return {"echo": cmd_echo, "burst": cmd_burst, "churn": cmd_churn, "flow": cmd_flow}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
