#!/usr/bin/env python3
"""Hostile input for the bad_input lab scenario, run inside a namespace with
`ip netns exec NS python3 inject.py ...`. Prints one JSON line describing what it did.

vrrp:          send VRRPv3 advertisements (RFC 5798 section 5) to 224.0.0.18. Without
               --hdrincl the kernel writes the IP header (source = --src, TTL set with
               IP_MULTICAST_TTL); with --hdrincl we write it ourselves, which is how a packet
               with TTL 64 and a spoofed source (the peer's address) is made. The checksum
               covers the IPv4 pseudo-header (RFC 5798 5.2.8), so a receiver that drops the
               packet drops it for the reason under test (source or TTL), not for a bad
               checksum.
vrrp6:         send IPv6 VRRPv3 advertisements (RFC 5798 5.1.2) to ff02::12 on --ifname, from
               --src (an address of this namespace, set with IPV6_PKTINFO: link-local or
               not) with hop limit --hop-limit. The checksum covers the IPv6 pseudo-header
               (RFC 8200 8.1) unless --bad-checksum flips it on purpose.
sync-garbage:  open a TCP connection to the sync port from a given source address and send
               one malformed frame: `bad-length` (length prefix 0xFFFFFFFF) or
               `junk-protobuf` (a sane length followed by bytes that are no valid Frame).
               Then wait (bounded) to see whether the receiver closes the connection.
               `stalled` sends only the start of a frame and keeps the connection open,
               as a stuck peer would; `silent-after-hello` sends a valid Hello in the
               peer's name that promises a frame every second (speaks_every_ms), then
               nothing. `closed_after_s` says when the receiver gave up.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

IPPROTO_VRRP = 112
VRRP_GROUP = "224.0.0.18"
VRRP_GROUP6 = "ff02::12"


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def vrrp_advert(src: str, dst: str, vrid: int, priority: int, interval_cs: int,
                addresses: list[str]) -> bytes:
    """VRRPv3 advertisement (no IP header) with the RFC 5798 5.2.8 checksum."""
    addrs = b"".join(socket.inet_aton(a) for a in addresses)
    head = struct.pack("!BBBBHH", (3 << 4) | 1, vrid, priority, len(addresses),
                       interval_cs & 0x0FFF, 0)
    msg = head + addrs
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(
        "!BBH", 0, IPPROTO_VRRP, len(msg))
    csum = inet_checksum(pseudo + msg)
    return msg[:6] + struct.pack("!H", csum) + msg[8:]


def ipv4_header(src: str, dst: str, ttl: int, payload_len: int) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + payload_len, 0, 0, ttl,
                      IPPROTO_VRRP, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]


def cmd_vrrp(a):
    addresses = a.addr or []
    payload = vrrp_advert(a.src, VRRP_GROUP, a.vrid, a.priority, a.interval_cs, addresses)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
    if a.ifname:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.ifname.encode())
        ifindex = socket.if_nametoindex(a.ifname)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                     struct.pack("=4s4si", b"\0" * 4, b"\0" * 4, ifindex))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    if a.hdrincl:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        packet = ipv4_header(a.src, VRRP_GROUP, a.ttl, len(payload)) + payload
    else:
        s.bind((a.src, 0))
        if not a.ifname:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.src))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, a.ttl)
        packet = payload
    sent = 0
    for i in range(a.count):
        s.sendto(packet, (VRRP_GROUP, 0))
        sent += 1
        if i + 1 < a.count:
            time.sleep(a.interval_s)
    print(json.dumps({"sent": sent, "src": a.src, "ttl": a.ttl, "vrid": a.vrid,
                      "priority": a.priority, "hdrincl": a.hdrincl,
                      "vrrp_hex": payload.hex()}))
    return 0


def vrrp6_advert(src: str, dst: str, vrid: int, priority: int, interval_cs: int,
                 addresses: list[str], bad_checksum: bool) -> bytes:
    """IPv6 VRRPv3 advertisement (no IPv6 header) with its checksum (or a wrong one)."""
    addrs = b"".join(socket.inet_pton(socket.AF_INET6, a) for a in addresses)
    msg = struct.pack("!BBBBHH", (3 << 4) | 1, vrid, priority, len(addresses),
                      interval_cs & 0x0FFF, 0) + addrs
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!I", len(msg)) + b"\0\0\0" + bytes([IPPROTO_VRRP]))
    csum = inet_checksum(pseudo + msg) ^ (0x0101 if bad_checksum else 0)
    return msg[:6] + struct.pack("!H", csum) + msg[8:]


def cmd_vrrp6(a):
    payload = vrrp6_advert(a.src, VRRP_GROUP6, a.vrid, a.priority, a.interval_cs,
                           a.addr or [], a.bad_checksum)
    ifindex = socket.if_nametoindex(a.ifname)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_VRRP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.ifname.encode())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, a.hop_limit)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    pktinfo = socket.inet_pton(socket.AF_INET6, a.src) + struct.pack("@I", ifindex)
    sent = 0
    for i in range(a.count):
        s.sendmsg([payload], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0,
                  (VRRP_GROUP6, 0, 0, ifindex))
        sent += 1
        if i + 1 < a.count:
            time.sleep(a.interval_s)
    print(json.dumps({"sent": sent, "src": a.src, "hop_limit": a.hop_limit, "vrid": a.vrid,
                      "priority": a.priority, "bad_checksum": a.bad_checksum,
                      "vrrp_hex": payload.hex()}))
    return 0


# Protobuf by hand (sync/proto/fwha_sync.proto; no protobuf module needed in the lab):
# varints, and fields keyed (number << 3 | wire type), 0 = varint, 2 = length-delimited.
def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(number, value):
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value)
    return pb_varint(number << 3 | 2) + pb_varint(len(value)) + value


def sync_frame(body_field, body):
    frame = pb_field(body_field, body)  # Frame.hello = 1, Frame.flows = 2
    return struct.pack("!I", len(frame)) + frame


def hello_frame(node, speaks_every_ms=None):
    """A valid Hello in `node`'s name (protocol 2), promising a frame every
    `speaks_every_ms` (field 11) if given."""
    body = pb_field(1, 2) + pb_field(2, node.encode())
    if speaks_every_ms is not None:
        body += pb_field(11, speaks_every_ms)
    return sync_frame(1, body)


def cmd_sync_garbage(a):
    if a.kind == "bad-length":
        data = b"\xff\xff\xff\xff" + b"\x00" * 16
    elif a.kind == "junk-protobuf":
        # 0xff bytes form a varint longer than 10 bytes: no protobuf parser accepts it.
        junk = b"\xff" * 24
        data = struct.pack("!I", len(junk)) + junk
    elif a.kind == "silent-after-hello":
        data = hello_frame(a.node, speaks_every_ms=1000)
    elif a.kind in ("truncated", "stalled"):
        # A length prefix of 100 bytes and 10 of them; truncated then ends the stream.
        data = struct.pack("!I", 100) + b"\x0a" * 10
    else:  # out-of-order: a valid Hello in the peer's name (protocol 2), then FlowBatch seq 5
        # of a session, which starts its numbering, and seq 7: a gap.
        data = hello_frame(a.node)
        for seq in (5, 7):
            data += sync_frame(2, pb_field(1, seq) + pb_field(3, 77))
    result = {"kind": a.kind, "src": a.src, "dst": f"{a.dst}:{a.port}", "connected": False,
              "sent": 0, "peer_closed": None, "closed_after_s": None, "error": None}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    try:
        s.bind((a.src, 0))
        s.connect((a.dst, a.port))
        result["connected"] = True
        s.sendall(data)
        sent_at = time.monotonic()
        result["sent"] = len(data)
        if a.kind == "truncated":
            s.shutdown(socket.SHUT_WR)  # the stream ends inside the frame
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                result["peer_closed"] = "eof"
                break
            # The receiver may greet us first (Hello); keep reading until it gives up on us.
        if result["peer_closed"] is None:
            result["peer_closed"] = False
    except ConnectionResetError:
        result["peer_closed"] = "reset"
    except OSError as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        s.close()
    if result["sent"] and result["peer_closed"]:
        result["closed_after_s"] = round(time.monotonic() - sent_at, 2)
    print(json.dumps(result))
    return 0 if result["connected"] else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vrrp")
    v.add_argument("--src", required=True)
    v.add_argument("--ifname")
    v.add_argument("--hdrincl", action="store_true")
    v.add_argument("--ttl", type=int, default=255)
    v.add_argument("--vrid", type=int, default=51)
    v.add_argument("--priority", type=int, default=255)
    v.add_argument("--interval-cs", type=int, default=10)
    v.add_argument("--addr", action="append", help="address list entry (repeatable)")
    v.add_argument("--count", type=int, default=3)
    v.add_argument("--interval-s", type=float, default=0.05)
    v6 = sub.add_parser("vrrp6")
    v6.add_argument("--src", required=True)
    v6.add_argument("--ifname", required=True)
    v6.add_argument("--hop-limit", type=int, default=255)
    v6.add_argument("--vrid", type=int, default=51)
    v6.add_argument("--priority", type=int, default=255)
    v6.add_argument("--interval-cs", type=int, default=10)
    v6.add_argument("--addr", action="append", help="address list entry (repeatable)")
    v6.add_argument("--bad-checksum", action="store_true")
    v6.add_argument("--count", type=int, default=3)
    v6.add_argument("--interval-s", type=float, default=0.05)
    g = sub.add_parser("sync-garbage")
    g.add_argument("--src", required=True)
    g.add_argument("--dst", required=True)
    g.add_argument("--port", type=int, default=7788)
    g.add_argument("--kind", choices=["bad-length", "junk-protobuf", "truncated", "out-of-order",
                                      "stalled", "silent-after-hello"], required=True)
    g.add_argument("--node", default="fw1",
                   help="out-of-order, silent-after-hello: the name its Hello gives")
    g.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args(argv)
    return {"vrrp": cmd_vrrp, "vrrp6": cmd_vrrp6, "sync-garbage": cmd_sync_garbage}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
