#!/usr/bin/env python3
"""Flows of every kind for the coverage scenario (coverage.py), run inside a namespace with
`ip netns exec NS python3 coverage_flows.py ROLE ...` (ROLE = client or server).

Each role runs the listeners of the flows the other role opens, then opens its own flows
(FLOWS below: the one table both roles and the orchestrator read). Every flow carries its
name in its payload, so the listening side can say which NAT source (address, port or ICMP
id) it saw for which flow: a flow whose source changes across the failover lost its NAT
binding, even if its packets still get through (a new mapping made by the new Master).

Flow kinds (initiator side):
  tcp   connect(), `HELLO name`, then a numbered line every INTERVAL s; the peer echoes each
        line. Errors: reset, EOF, timeout (no echo for --stall s), corrupt echo.
  udp   a connected UDP socket sends `name seq` every INTERVAL s; the peer echoes it.
  ping  ICMP / ICMPv6 echo requests with a fixed id from a raw socket (payload carries the
        name); the peer's kernel answers; a raw socket on the peer records (source, id).
  sctp  an SCTP association spoken over a raw socket (this kernel has no SCTP sockets,
        CONFIG_IP_SCTP is off, but conntrack and NAT track SCTP): INIT / INIT-ACK /
        COOKIE-ECHO / COOKIE-ACK, then one DATA chunk every INTERVAL s, SACKed by the peer.
        Checksums are CRC32c as RFC 4960 wants (the firewall's conntrack verifies them).
        The peer answers only associations it knows, by (source, port, verification tag).
  ftp   an FTP control connection (client) with active-mode (PORT) transfers; the steps
        before and after the failover are in the flow's `pre`/`post` lists:
          xfer  PORT + RETR: the server connects back to the PORT address (through the
                firewall's ftp helper expectation and its NAT) and sends a file;
          port_samelen  PORT only (the expectation is created now), with the address
                written with leading zeros (192,00,02,10) so that the helper's rewrite to
                the WAN VIP (198,51,100,1) keeps its length: no TCP sequence adjustment
                is needed, so what a later `retr` tests is the expectation alone;
          retr  RETR only (uses the expectation created by an earlier PORT).
        The post steps start when the orchestrator creates --post-file.

Output: --ready-file once the listeners are up (JSON: {}), --established-file once every own
flow has its first answer or failed (JSON: name -> {ok, sport, error}), and at the end (stop
on SIGTERM or --duration) --out: JSON with, per own flow, the answer times and the error, and
per peer flow what the listener saw.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time

CLIENT4, CLIENT6 = "192.0.2.10", "fd00:1::10"
SERVER4, SERVER6 = "198.51.100.10", "fd00:2::10"
WAN_VIP4, WAN_VIP6 = "198.51.100.1", "fd00:2::1"
FTP_PORT = 21
INTERVAL = 0.1

# Every flow of the coverage run. by = the role that opens it; listen = (address, port) where
# the other role listens (after DNAT for port forwards); kinds = the coverage classes it
# counts for. known_gap: a capability fwhad does not have yet (its checks never fail the run).
FLOWS = [
    dict(name="tcp4", by="client", kind="tcp", fam=4, dst=SERVER4, port=9101,
         kinds=["ipv4", "tcp", "snat"]),
    dict(name="udp4", by="client", kind="udp", fam=4, dst=SERVER4, port=9102,
         kinds=["ipv4", "udp", "snat"]),
    dict(name="icmp4", by="client", kind="ping", fam=4, dst=SERVER4, ident=0x4204,
         kinds=["ipv4", "icmp", "snat"]),
    dict(name="sctp4", by="client", kind="sctp", fam=4, dst=SERVER4, port=9103, sport=40103,
         kinds=["ipv4", "sctp", "snat"]),
    dict(name="tcp4_masq", by="client", kind="tcp", fam=4, dst=SERVER4, port=9104,
         kinds=["ipv4", "tcp", "masquerade"]),
    dict(name="tcp4_snat_range", by="client", kind="tcp", fam=4, dst=SERVER4, port=9105,
         kinds=["ipv4", "tcp", "port_rewrite"], nat_port_range=(20000, 20999)),
    dict(name="tcp4_mark", by="client", kind="tcp", fam=4, dst=SERVER4, port=9106,
         kinds=["ipv4", "tcp", "mark"], mark=0x42),
    dict(name="tcp4_zone", by="client", kind="tcp", fam=4, dst=SERVER4, port=9107,
         kinds=["ipv4", "tcp", "zone"], zone=5),
    dict(name="tcp4_label", by="client", kind="tcp", fam=4, dst=SERVER4, port=9108,
         kinds=["ipv4", "tcp", "label"], label=3),
    dict(name="tcp4_dnat", by="server", kind="tcp", fam=4, dst=WAN_VIP4, port=8080,
         listen=(CLIENT4, 8080), kinds=["ipv4", "tcp", "dnat"]),
    dict(name="tcp4_dnat_port", by="server", kind="tcp", fam=4, dst=WAN_VIP4, port=8081,
         listen=(CLIENT4, 80), kinds=["ipv4", "tcp", "dnat", "port_rewrite"]),
    dict(name="udp4_dnat_port", by="server", kind="udp", fam=4, dst=WAN_VIP4, port=8082,
         listen=(CLIENT4, 53), kinds=["ipv4", "udp", "dnat", "port_rewrite"]),
    dict(name="tcp6", by="client", kind="tcp", fam=6, dst=SERVER6, port=9101,
         kinds=["ipv6", "tcp", "snat"]),
    dict(name="udp6", by="client", kind="udp", fam=6, dst=SERVER6, port=9102,
         kinds=["ipv6", "udp", "snat"]),
    dict(name="icmp6", by="client", kind="ping", fam=6, dst=SERVER6, ident=0x4206,
         kinds=["ipv6", "icmp", "snat"]),
    dict(name="sctp6", by="client", kind="sctp", fam=6, dst=SERVER6, port=9103, sport=40106,
         kinds=["ipv6", "sctp", "snat"]),
    dict(name="tcp6_dnat_port", by="server", kind="tcp", fam=6, dst=WAN_VIP6, port=8081,
         listen=(CLIENT6, 80), kinds=["ipv6", "tcp", "dnat", "port_rewrite"]),
    # FTP (active mode) through the ftp helper: see the module docstring for the steps.
    dict(name="ftp_xfer_before_and_after", by="client", kind="ftp", fam=4, dst=SERVER4,
         port=FTP_PORT, pre=["xfer"], post=["xfer"], kinds=["ftp"]),
    dict(name="ftp_xfer_after", by="client", kind="ftp", fam=4, dst=SERVER4, port=FTP_PORT,
         pre=[], post=["xfer"], kinds=["ftp"]),
    dict(name="ftp_port_before_retr_after", by="client", kind="ftp", fam=4, dst=SERVER4,
         port=FTP_PORT, pre=["port_samelen"], post=["retr"], kinds=["ftp"]),
]
for _f in FLOWS:
    _f.setdefault("listen", (_f["dst"], _f["port"]) if _f["kind"] != "ping" else (_f["dst"], 0))

stop_event = threading.Event()
lock = threading.Lock()


def now_ns() -> int:
    return time.monotonic_ns()


def log(msg):
    print(f"coverage_flows[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def family(fam):
    return socket.AF_INET if fam == 4 else socket.AF_INET6


def sleep_until(deadline_s):
    while not stop_event.is_set():
        left = deadline_s - time.monotonic()
        if left <= 0:
            return True
        stop_event.wait(min(left, 0.05))
    return False


# --- checksums --------------------------------------------------------------------------------

def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


_CRC32C = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C.append(_c)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --- SCTP packets (RFC 4960) ------------------------------------------------------------------

SCTP_DATA, SCTP_INIT, SCTP_INIT_ACK, SCTP_SACK = 0, 1, 2, 3
SCTP_ABORT, SCTP_COOKIE_ECHO, SCTP_COOKIE_ACK = 6, 10, 11


def sctp_chunk(ctype, flags, value=b""):
    length = 4 + len(value)
    pad = b"\0" * (-length % 4)
    return struct.pack("!BBH", ctype, flags, length) + value + pad


def sctp_packet(sport, dport, vtag, chunks):
    pkt = bytearray(struct.pack("!HHII", sport, dport, vtag, 0) + b"".join(chunks))
    pkt[8:12] = struct.pack("<I", crc32c(bytes(pkt)))
    return bytes(pkt)


def sctp_parse(data):
    """-> (sport, dport, vtag, [(type, flags, value)]) or None."""
    if len(data) < 12:
        return None
    sport, dport, vtag, _csum = struct.unpack_from("!HHII", data)
    chunks, off = [], 12
    while off + 4 <= len(data):
        ctype, flags, length = struct.unpack_from("!BBH", data, off)
        if length < 4 or off + length > len(data):
            break
        chunks.append((ctype, flags, data[off + 4:off + length]))
        off += length + (-length % 4)
    return sport, dport, vtag, chunks


def sctp_init_value(tag, tsn, extra=b""):
    return struct.pack("!IIHHI", tag, 65536, 1, 1, tsn) + extra


def raw_recv(sock, fam):
    """-> (payload without IP header, source address) from a raw socket."""
    data, addr = sock.recvfrom(65536)
    if fam == 4:
        ihl = (data[0] & 0x0F) * 4
        return data[ihl:], addr[0]
    return data, addr[0]


# --- recording --------------------------------------------------------------------------------

class FlowRecord:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec["name"]
        self.started_ns = now_ns()
        self.sport = None
        self.established_ns = None
        self.answers = []            # monotonic ns of every answer (echo, reply, SACK)
        self.error = None
        self.error_ns = None
        self.steps = []              # ftp: one dict per step
        self.notes = {}

    def answer(self):
        t = now_ns()
        with lock:
            if self.established_ns is None:
                self.established_ns = t
            self.answers.append(t)

    def fail(self, what):
        with lock:
            if self.error is None:
                self.error, self.error_ns = what, now_ns()

    def doc(self):
        return {"name": self.name, "sport": self.sport, "started_ns": self.started_ns,
                "established_ns": self.established_ns, "answers": list(self.answers),
                "error": self.error, "error_ns": self.error_ns, "steps": self.steps,
                "notes": self.notes}


class PeerView:
    """What a listener saw of the flows of the other role: per flow name, per NAT source
    (str), the count and first/last times."""

    def __init__(self):
        self.flows = {}
        self.unknown = []            # events the listener could not attribute / refused

    def saw(self, name, source, what="packets"):
        t = now_ns()
        with lock:
            srcs = self.flows.setdefault(name, {})
            e = srcs.setdefault(source, {"count": 0, "first_ns": t, "last_ns": t, "what": what})
            e["count"] += 1
            e["last_ns"] = t

    def refused(self, **info):
        with lock:
            if len(self.unknown) < 200:
                info["t_ns"] = now_ns()
                self.unknown.append(info)

    def doc(self):
        with lock:
            return {"flows": json.loads(json.dumps(self.flows)), "refused": list(self.unknown)}


view = PeerView()


def fmt_addr(a, p=None):
    a = a.split("%")[0]
    if p is None:
        return a
    return f"[{a}]:{p}" if ":" in a else f"{a}:{p}"


# --- listeners --------------------------------------------------------------------------------

def tcp_listener(specs):
    """One thread, one selector: every TCP listening socket of `specs` (deduplicated)."""
    sel = selectors.DefaultSelector()
    bound = set()
    for s in specs:
        fam, (addr, port) = s["fam"], s["listen"]
        if (fam, addr, port) in bound:
            continue
        bound.add((fam, addr, port))
        ls = socket.socket(family(fam), socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == 6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        ls.bind((addr, port))
        ls.listen(64)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, ("listen", None))

    def run():
        conns = {}
        while not stop_event.is_set():
            for key, _ in sel.select(timeout=0.1):
                kind, st = key.data
                if kind == "listen":
                    try:
                        c, peer = key.fileobj.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    st = {"buf": b"", "name": None, "peer": fmt_addr(peer[0], peer[1])}
                    conns[c] = st
                    sel.register(c, selectors.EVENT_READ, ("conn", st))
                    continue
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    data = b""
                    st["end"] = f"error {e.errno}"
                if not data:
                    sel.unregister(c)
                    c.close()
                    conns.pop(c, None)
                    if st["name"]:
                        view.refused(flow=st["name"], peer=st["peer"],
                                     event="tcp connection ended: " + st.get("end", "eof"))
                    continue
                st["buf"] += data
                while b"\n" in st["buf"]:
                    line, st["buf"] = st["buf"].split(b"\n", 1)
                    if st["name"] is None and line.startswith(b"HELLO "):
                        st["name"] = line[6:].decode(errors="replace")
                    if st["name"]:
                        view.saw(st["name"], st["peer"], "tcp")
                    try:
                        c.sendall(line + b"\n")     # small lines: fits the send buffer
                    except OSError:
                        pass
        for c in list(conns):
            c.close()
    return run


def udp_listener(specs):
    sel = selectors.DefaultSelector()
    bound = set()
    for s in specs:
        fam, (addr, port) = s["fam"], s["listen"]
        if (fam, addr, port) in bound:
            continue
        bound.add((fam, addr, port))
        us = socket.socket(family(fam), socket.SOCK_DGRAM)
        if fam == 6:
            us.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        us.bind((addr, port))
        us.setblocking(False)
        sel.register(us, selectors.EVENT_READ)

    def run():
        while not stop_event.is_set():
            for key, _ in sel.select(timeout=0.1):
                try:
                    data, src = key.fileobj.recvfrom(2048)
                except OSError:
                    continue
                name = data.split(b" ", 1)[0].decode(errors="replace")
                view.saw(name, fmt_addr(src[0], src[1]), "udp")
                try:
                    key.fileobj.sendto(data, src)
                except OSError:
                    pass
    return run


def icmp_observer(fams):
    """Raw sockets that see every echo request arriving here; the kernel answers them."""
    socks = {}
    for fam in fams:
        if fam == 4:
            socks[fam] = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            socks[fam] = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        socks[fam].settimeout(0.1)
    want = {4: 8, 6: 128}

    def run_one(fam):
        s = socks[fam]
        while not stop_event.is_set():
            try:
                data, src = raw_recv(s, fam)
            except socket.timeout:
                continue
            except OSError:
                continue
            if len(data) < 8 or data[0] != want[fam]:
                continue
            ident = struct.unpack_from("!H", data, 4)[0]
            payload = data[8:]
            if not payload.startswith(b"FWHA "):
                continue
            name = payload[5:].split(b" ", 1)[0].decode(errors="replace")
            view.saw(name, f"{fmt_addr(src)} id={ident}", "icmp echo request")
    return [lambda f=fam: run_one(f) for fam in socks]


class SctpResponder:
    """The listening end of the raw SCTP associations: INIT -> INIT-ACK, COOKIE-ECHO ->
    COOKIE-ACK, DATA -> SACK. Associations are keyed by (peer address, peer port, our port)
    and answered only when the verification tag matches; DATA for no known association is
    recorded as refused (a real endpoint would answer ABORT)."""

    def __init__(self, specs):
        self.ports = {s["listen"][1] for s in specs}
        self.fams = sorted({s["fam"] for s in specs})
        self.socks = {}
        for fam in self.fams:
            self.socks[fam] = socket.socket(family(fam), socket.SOCK_RAW, socket.IPPROTO_SCTP)
            self.socks[fam].settimeout(0.1)
        self.assocs = {}

    def send(self, fam, dst, pkt):
        self.socks[fam].sendto(pkt, (dst, 0) if fam == 4 else (dst, 0, 0, 0))

    def run_one(self, fam):
        s = self.socks[fam]
        while not stop_event.is_set():
            try:
                data, src = raw_recv(s, fam)
            except (socket.timeout, OSError):
                continue
            p = sctp_parse(data)
            if not p or p[1] not in self.ports:
                continue
            sport, dport, vtag, chunks = p
            key = (src, sport, dport)
            for ctype, _flags, value in chunks:
                if ctype == SCTP_INIT and len(value) >= 16:
                    peer_tag, _rwnd, _os, _mis, peer_tsn = struct.unpack_from("!IIHHI", value)
                    my_tag = random.randrange(1, 1 << 32)
                    cookie = struct.pack("!II", my_tag, peer_tag) + b"fwha-cookie"
                    self.assocs[key] = {"my_tag": my_tag, "peer_tag": peer_tag, "up": False}
                    param = struct.pack("!HH", 7, 4 + len(cookie)) + cookie
                    self.send(fam, src, sctp_packet(dport, sport, peer_tag, [sctp_chunk(
                        SCTP_INIT_ACK, 0, sctp_init_value(my_tag, random.randrange(1 << 32),
                                                          param))]))
                    continue
                a = self.assocs.get(key)
                if a is None or vtag != a["my_tag"]:
                    name = None
                    if ctype == SCTP_DATA and len(value) > 12:
                        name = value[12:].split(b" ", 1)[0].decode(errors="replace")
                    view.refused(flow=name, peer=fmt_addr(src, sport), event=(
                        f"sctp chunk {ctype} vtag {vtag:#x} for no known association"))
                    continue
                if ctype == SCTP_COOKIE_ECHO:
                    a["up"] = True
                    self.send(fam, src, sctp_packet(dport, sport, a["peer_tag"],
                                                    [sctp_chunk(SCTP_COOKIE_ACK, 0)]))
                elif ctype == SCTP_DATA and len(value) >= 12:
                    tsn = struct.unpack_from("!I", value)[0]
                    name = value[12:].split(b" ", 1)[0].decode(errors="replace")
                    view.saw(name, f"{fmt_addr(src, sport)} vtag={vtag:#x}", "sctp data")
                    self.send(fam, src, sctp_packet(dport, sport, a["peer_tag"], [sctp_chunk(
                        SCTP_SACK, 0, struct.pack("!IIHH", tsn, 65536, 0, 0))]))

    def runners(self):
        return [lambda f=fam: self.run_one(f) for fam in self.fams]


class FtpServer:
    """A minimal active-mode FTP server on SERVER4:21: USER, PASS, TYPE, PORT, EPRT, RETR,
    NOOP, QUIT. RETR connects to the last PORT address and sends a small file."""

    def __init__(self):
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((SERVER4, FTP_PORT))
        self.ls.listen(16)
        self.ls.settimeout(0.1)

    def run(self):
        while not stop_event.is_set():
            try:
                c, peer = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.session, args=(c, peer), daemon=True).start()

    def session(self, c, peer):
        c.settimeout(0.2)
        name, port_addr, buf = None, None, b""

        def reply(line):
            c.sendall(line.encode() + b"\r\n")

        try:
            reply("220 fwha lab ftp")
            while not stop_event.is_set():
                try:
                    data = c.recv(4096)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    cmd, _, arg = line.decode(errors="replace").partition(" ")
                    cmd = cmd.upper()
                    if cmd == "USER":
                        name = arg
                        view.saw(name, fmt_addr(peer[0], peer[1]), "ftp control")
                        reply("331 any password")
                    elif cmd == "PASS":
                        reply("230 logged in")
                    elif cmd in ("TYPE", "NOOP", "MODE", "STRU"):
                        reply("200 ok")
                    elif cmd == "PORT":
                        try:
                            n = [int(x) for x in arg.split(",")]
                            port_addr = (".".join(map(str, n[:4])), n[4] * 256 + n[5])
                            view.saw(name, f"PORT {port_addr[0]}:{port_addr[1]}", "ftp port")
                            reply("200 PORT ok")
                        except (ValueError, IndexError):
                            reply("501 bad PORT")
                    elif cmd == "RETR":
                        if not port_addr:
                            reply("503 PORT first")
                            continue
                        reply("150 opening data connection")
                        ok = self.send_file(name, port_addr, arg)
                        reply("226 transfer complete" if ok else "425 cannot open data connection")
                    elif cmd == "QUIT":
                        reply("221 bye")
                        return
                    else:
                        view.refused(flow=name, peer=fmt_addr(peer[0], peer[1]),
                                     event=f"ftp: unknown command {line[:40]!r}")
                        reply("502 not implemented")
        except OSError:
            pass
        finally:
            c.close()

    def send_file(self, name, addr, fname):
        d = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        d.settimeout(3.0)
        try:
            d.connect(addr)
            d.sendall((f"file {fname} for {name}\n" * 20).encode())
            view.saw(name, f"data to {addr[0]}:{addr[1]} ok", "ftp data")
            return True
        except OSError as e:
            view.refused(flow=name, peer=f"{addr[0]}:{addr[1]}",
                         event=f"ftp data connection failed: {e}")
            return False
        finally:
            d.close()


# --- initiators -------------------------------------------------------------------------------

def tcp_flow(rec, stall_s):
    spec = rec.spec
    s = socket.socket(family(spec["fam"]), socket.SOCK_STREAM)
    s.settimeout(3.0)
    try:
        s.connect((spec["dst"], spec["port"]))
        rec.sport = s.getsockname()[1]
        s.settimeout(stall_s)
        f = s.makefile("rb")
        seq = 0
        line = f"HELLO {rec.name}\n".encode()
        next_t = time.monotonic()
        while not stop_event.is_set():
            s.sendall(line)
            got = f.readline()
            if not got:
                rec.fail("eof")
                return
            if got != line:
                rec.fail(f"corrupt echo {got[:40]!r}")
                return
            rec.answer()
            seq += 1
            line = f"{rec.name} {seq}\n".encode()
            next_t += INTERVAL
            if not sleep_until(next_t):
                break
    except socket.timeout:
        rec.fail(f"timeout (no echo for {stall_s} s)")
    except ConnectionResetError:
        rec.fail("reset")
    except OSError as e:
        rec.fail(f"error {e.strerror or e}")
    finally:
        s.close()


def udp_flow(rec, _stall_s):
    spec = rec.spec
    s = socket.socket(family(spec["fam"]), socket.SOCK_DGRAM)
    s.connect((spec["dst"], spec["port"]))
    rec.sport = s.getsockname()[1]
    s.settimeout(0.02)
    seq = 0
    next_t = time.monotonic()
    errors = 0
    try:
        while not stop_event.is_set():
            try:
                s.send(f"{rec.name} {seq}".encode())
            except OSError:
                errors += 1
            seq += 1
            next_t += INTERVAL
            while time.monotonic() < next_t and not stop_event.is_set():
                try:
                    data = s.recv(2048)
                except socket.timeout:
                    continue
                except OSError:
                    errors += 1     # e.g. ICMP port unreachable: ECONNREFUSED
                    continue
                if data.split(b" ", 1)[0] == rec.name.encode():
                    rec.answer()
    finally:
        rec.notes["send_or_recv_errors"] = errors
        s.close()


def ping_flow(rec, _stall_s):
    spec = rec.spec
    fam, ident = spec["fam"], spec["ident"]
    if fam == 4:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        req_type, rep_type = 8, 0
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        req_type, rep_type = 128, 129     # the kernel fills the ICMPv6 checksum
    rec.sport = ident
    s.settimeout(0.02)
    seq = 0
    next_t = time.monotonic()
    try:
        while not stop_event.is_set():
            payload = f"FWHA {rec.name} {seq} ".encode().ljust(48, b".")
            hdr = struct.pack("!BBHHH", req_type, 0, 0, ident, seq & 0xFFFF)
            if fam == 4:
                csum = inet_checksum(hdr + payload)
                hdr = struct.pack("!BBHHH", req_type, 0, csum, ident, seq & 0xFFFF)
            try:
                s.sendto(hdr + payload, (spec["dst"], 0))
            except OSError:
                pass
            seq += 1
            next_t += INTERVAL
            while time.monotonic() < next_t and not stop_event.is_set():
                try:
                    data, _src = raw_recv(s, fam)
                except (socket.timeout, OSError):
                    continue
                if len(data) >= 8 and data[0] == rep_type and \
                        struct.unpack_from("!H", data, 4)[0] == ident and \
                        data[8:].startswith(f"FWHA {rec.name} ".encode()):
                    rec.answer()
    finally:
        s.close()


def sctp_flow(rec, stall_s):
    spec = rec.spec
    fam, dst, dport, sport = spec["fam"], spec["dst"], spec["port"], spec["sport"]
    s = socket.socket(family(fam), socket.SOCK_RAW, socket.IPPROTO_SCTP)
    s.settimeout(0.02)
    rec.sport = sport
    my_tag = random.randrange(1, 1 << 32)
    tsn = random.randrange(1 << 31)
    dest = (dst, 0) if fam == 4 else (dst, 0, 0, 0)

    def wait_chunk(want, deadline):
        while time.monotonic() < deadline and not stop_event.is_set():
            try:
                data, src = raw_recv(s, fam)
            except (socket.timeout, OSError):
                continue
            p = sctp_parse(data)
            if not p or p[0] != dport or p[1] != sport or p[2] != my_tag:
                continue
            for ctype, _flags, value in p[3]:
                if ctype == want:
                    return value
                if ctype == SCTP_ABORT:
                    raise ConnectionResetError("ABORT")
        return None

    try:
        # Handshake, retried like SCTP's T1 timer would.
        peer_tag = cookie = None
        for _ in range(5):
            s.sendto(sctp_packet(sport, dport, 0, [sctp_chunk(SCTP_INIT, 0,
                                                              sctp_init_value(my_tag, tsn))]),
                     dest)
            v = wait_chunk(SCTP_INIT_ACK, time.monotonic() + 0.5)
            if v is not None and len(v) >= 16:
                peer_tag = struct.unpack_from("!I", v)[0]
                off = 16
                while off + 4 <= len(v):
                    ptype, plen = struct.unpack_from("!HH", v, off)
                    if ptype == 7:
                        cookie = v[off + 4:off + plen]
                    off += plen + (-plen % 4)
                break
        if peer_tag is None or cookie is None:
            rec.fail("no INIT-ACK")
            return
        rec.notes["vtags"] = {"client": f"{my_tag:#x}", "server": f"{peer_tag:#x}"}
        s.sendto(sctp_packet(sport, dport, peer_tag, [sctp_chunk(SCTP_COOKIE_ECHO, 0, cookie)]),
                 dest)
        if wait_chunk(SCTP_COOKIE_ACK, time.monotonic() + 1.0) is None:
            rec.fail("no COOKIE-ACK")
            return
        next_t = time.monotonic()
        last_ack = time.monotonic()
        while not stop_event.is_set():
            payload = f"{rec.name} {tsn} ".encode().ljust(32, b".")
            s.sendto(sctp_packet(sport, dport, peer_tag, [sctp_chunk(
                SCTP_DATA, 0x03, struct.pack("!IHHI", tsn, 0, tsn & 0xFFFF, 0) + payload)]),
                dest)
            next_t += INTERVAL
            v = wait_chunk(SCTP_SACK, next_t)
            if v is not None and len(v) >= 4 and struct.unpack_from("!I", v)[0] == tsn:
                rec.answer()
                last_ack = time.monotonic()
                tsn = (tsn + 1) & 0xFFFFFFFF
            elif time.monotonic() - last_ack > stall_s:
                rec.fail(f"timeout (no SACK for {stall_s} s)")
                return
            # else: retransmit the same TSN (lost DATA or SACK)
            sleep_until(next_t)
    except ConnectionResetError:
        rec.fail("ABORT")
    except OSError as e:
        rec.fail(f"error {e.strerror or e}")
    finally:
        s.close()


def port_address(addr, same_length):
    """h1,h2,h3,h4 of a PORT command; with same_length, octets get leading zeros until the
    text is as long as the WAN VIP's (what the NAT helper writes instead)."""
    octets = addr.split(".")
    if same_length:
        want = len(WAN_VIP4.replace(".", ","))
        i = 0
        while len(",".join(octets)) < want and any(len(o) < 3 for o in octets):
            if len(octets[i % 4]) < 3:
                octets[i % 4] = "0" + octets[i % 4]
            i += 1
    return ",".join(octets)


class FtpClient:
    def __init__(self, rec):
        self.rec = rec
        self.c = None
        self.buf = b""
        self.listener = None

    def cmd(self, line, timeout=4.0):
        if line:
            self.c.sendall(line.encode() + b"\r\n")
        return self.read_reply(timeout)

    def read_reply(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply")
            self.c.settimeout(left)
            data = self.c.recv(4096)
            if not data:
                raise ConnectionError("control connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def login(self):
        spec = self.rec.spec
        self.c = socket.create_connection((spec["dst"], spec["port"]), timeout=3.0)
        self.rec.sport = self.c.getsockname()[1]
        for line, code in ((None, "220"), (f"USER {self.rec.name}", "331"), ("PASS x", "230"),
                           ("TYPE I", "200")):
            r = self.cmd(line)
            if not r.startswith(code):
                raise ConnectionError(f"unexpected reply {r!r}")

    def port(self, same_length=False):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((CLIENT4, 0))
        self.listener.listen(1)
        p = self.listener.getsockname()[1]
        r = self.cmd(f"PORT {port_address(CLIENT4, same_length)},{p >> 8},{p & 255}")
        if not r.startswith("200"):
            raise ConnectionError(f"PORT refused: {r!r}")
        return p

    def retr(self):
        r = self.cmd("RETR f.txt")
        if not r.startswith("150"):
            raise ConnectionError(f"RETR refused: {r!r}")
        self.listener.settimeout(4.0)
        try:
            d, peer = self.listener.accept()
        except socket.timeout:
            d = None
        data = b""
        if d is not None:
            d.settimeout(3.0)
            try:
                while True:
                    chunk = d.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            finally:
                d.close()
        self.listener.close()
        self.listener = None
        final = self.read_reply(5.0)
        ok = d is not None and final.startswith("226") and data.startswith(b"file f.txt")
        detail = (f"data connection {'from ' + fmt_addr(peer[0], peer[1]) if d else 'never came'}"
                  f", {len(data)} bytes, final reply {final!r}")
        return ok, detail

    def step(self, what, phase):
        t0 = now_ns()
        res = {"phase": phase, "step": what, "t_ns": t0, "ok": False}
        try:
            if what == "xfer":
                self.port()
                res["ok"], res["detail"] = self.retr()
            elif what == "port_samelen":
                p = self.port(same_length=True)
                res["ok"], res["detail"] = True, f"PORT {CLIENT4}:{p} accepted"
            elif what == "retr":
                res["ok"], res["detail"] = self.retr()
        except (OSError, TimeoutError, ConnectionError) as e:
            res["detail"] = f"{type(e).__name__}: {e}"
        res["ms"] = (now_ns() - t0) / 1e6
        with lock:
            self.rec.steps.append(res)
        if res["ok"]:
            self.rec.answer()
        return res["ok"]


def ftp_flow(rec, _stall_s, post_file):
    cl = FtpClient(rec)
    try:
        cl.login()
        rec.answer()                 # logged in: the flow is established
    except (OSError, TimeoutError, ConnectionError) as e:
        rec.fail(f"login: {type(e).__name__}: {e}")
        return
    for what in rec.spec["pre"]:
        cl.step(what, "pre")
    rec.notes["pre_done_ns"] = now_ns()
    while not stop_event.is_set() and not os.path.exists(post_file):
        stop_event.wait(0.02)
    if stop_event.is_set():
        rec.notes["post_done_ns"] = now_ns()
        return
    for what in rec.spec["post"]:
        if not cl.step(what, "post"):
            break
    rec.notes["post_done_ns"] = now_ns()
    try:
        cl.c.close()
    except OSError:
        pass


RUNNERS = {"tcp": tcp_flow, "udp": udp_flow, "ping": ping_flow, "sctp": sctp_flow}


# --- main -------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("role", choices=["client", "server"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready-file", required=True, help="written once the listeners are up")
    ap.add_argument("--go-file", required=True,
                    help="own flows start once this file exists (the other role listens)")
    ap.add_argument("--established-file", required=True)
    ap.add_argument("--post-file", required=True, help="created by the orchestrator after "
                    "the failover: the ftp flows run their post steps")
    ap.add_argument("--post-done-file", required=True,
                    help="written once every ftp flow has finished its post steps")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--stall", type=float, default=4.0,
                    help="a TCP/SCTP flow without an answer for this long has failed")
    a = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop_event.set())
    deadline = time.monotonic() + a.duration
    peer_role = "server" if a.role == "client" else "client"

    # Listeners for the flows the other role opens.
    theirs = [f for f in FLOWS if f["by"] == peer_role]
    threads = []
    runners = [tcp_listener([f for f in theirs if f["kind"] == "tcp"]),
               udp_listener([f for f in theirs if f["kind"] == "udp"])]
    runners += icmp_observer(sorted({f["fam"] for f in theirs if f["kind"] == "ping"}))
    sctp = [f for f in theirs if f["kind"] == "sctp"]
    if sctp:
        runners += SctpResponder(sctp).runners()
    if any(f["kind"] == "ftp" for f in theirs):
        runners.append(FtpServer().run)
    for r in runners:
        t = threading.Thread(target=r, daemon=True)
        t.start()
        threads.append(t)
    write_json(a.ready_file, {})

    while not os.path.exists(a.go_file) and not stop_event.is_set():
        if time.monotonic() > deadline:
            log("go file never came")
            stop_event.set()
        stop_event.wait(0.02)

    mine = [FlowRecord(f) for f in FLOWS if f["by"] == a.role]
    for rec in mine:
        if rec.spec["kind"] == "ftp":
            t = threading.Thread(target=ftp_flow, args=(rec, a.stall, a.post_file), daemon=True)
        else:
            t = threading.Thread(target=RUNNERS[rec.spec["kind"]], args=(rec, a.stall),
                                 daemon=True)
        t.start()
        threads.append(t)

    def established():
        return all(r.established_ns or r.error for r in mine) and all(
            not r.spec.get("pre") or "pre_done_ns" in r.notes or r.error for r in mine)
    while not stop_event.is_set() and not established() and time.monotonic() < deadline:
        stop_event.wait(0.02)
    write_json(a.established_file, {r.name: {"ok": bool(r.established_ns) and not r.error,
                                             "sport": r.sport, "error": r.error,
                                             "steps": list(r.steps)} for r in mine})

    ftp = [r for r in mine if r.spec["kind"] == "ftp"]
    post_done_written = False
    while not stop_event.is_set() and time.monotonic() < deadline:
        if not post_done_written and os.path.exists(a.post_file) and all(
                "post_done_ns" in r.notes or r.error for r in ftp):
            write_json(a.post_done_file, {})
            post_done_written = True
        stop_event.wait(0.05)
    stop_event.set()
    stop_ns = now_ns()
    for t in threads:
        t.join(timeout=2.0)
    write_json(a.out, {"role": a.role, "stop_ns": stop_ns,
                       "flows": {r.name: r.doc() for r in mine}, "peer_view": view.doc()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
