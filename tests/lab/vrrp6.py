#!/usr/bin/env python3
"""VRRPv3 over IPv6 in the lab (RFC 5798 5.1.2): the LAN carries IPv6 adverts, the WAN IPv4
ones, one group moves every VIP.

    vrrp6.py {crash6,bad_input6,freeze6} [--assert] [--sessions N] [--verbose] [--keep] [--max-seconds S]

The lab is netlab's with ipv6=True and lan_adverts="ipv6": dual-stack plan, IPv6 VIPs
fd00:1::1 (LAN) and fd00:2::1 (WAN), and on the LAN peer_address = the peer's link-local
address (fw1 fe80::2, fw2 fe80::3). A sniffer (sniff.py) on the client's LAN link records
every advert and Neighbour Advertisement the client sees.

crash6  fw1 and fw2 elect one Master (fw1); >= 100 IPv6 TCP sessions and a 1 ms IPv6 probe
        stream run from the client (fd00:1::10, gateway fd00:1::1) to the server
        (fd00:2::10) through it, SNATed to fd00:2::1 with random ports; then the crash of
        scenario.py (SIGSTOP every process of fw1, cut its links, SIGKILL). Asserts:
        - on the LAN only IPv6 adverts, each from the Master's link-local address to
          ff02::12 with hop limit 255, version 3, type 1, VRID 51, the Master's priority,
          listing fd00:1::1, with a correct checksum (recomputed by the sniffer); none from
          the Backup; no IPv4 adverts on the LAN;
        - the Backup accepted the Master's adverts on both links (it received as many as the
          Master sent, LAN and WAN together);
        - after the crash fw2 is the only Master, holds fd00:1::1, and sent an unsolicited
          Neighbour Advertisement for it (Override set, Solicited clear, hop limit 255, to
          ff02::1, its own MAC); the client's neighbour entry for fd00:1::1 moved to fw2's MAC;
        - every pre-existing IPv6 session survived, gap < 1000 ms;
        - `fwhactl status` counts no rejected advert (TTL, source, malformed, forged
          priority) on either node.

bad_input6  Hostile IPv6 adverts on the LAN while the pair runs (inject.py vrrp6), each sent
        3 times: (a) priority 255 from a stranger's link-local address (the client's) and
        (b) from a global address (fd00:1::10): both nodes count them in
        vrrp.rejected_source; (c) hop limit 64 from fw1's own link-local address fe80::2
        (sent in fw1's namespace, priority 0): fw2 counts it in vrrp.rejected_ttl (the hop
        limit comes from ancillary data, IPV6_HOPLIMIT); (d) the same with hop limit 255 and
        a wrong checksum: fw2 counts it in vrrp.rejected_malformed (the kernel does not check
        it for us, so it reaches the parser). No case changes a role or a transition count.

freeze6 scenario.py's freeze (the Master's fwhad stopped 2 s; IPv4 sessions) on this lab:
        the woken Master finds the peer's adverts queued, on the IPv6 socket as on the IPv4
        one, and steps down (reason stalled); every session survives, no second outage; and
        no advert rejected on either node.

Output, exit status (0 pass, 1 assertion failed, 2 lab failed, 77 not root) and the
wall-clock cap are scenario.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import labrun  # noqa: E402
import netlab  # noqa: E402
import scenario as sc  # noqa: E402
from netlab import FWS, LabError, LabTimeout, mono_ns, wait_for  # noqa: E402
from scenario import out  # noqa: E402

VRRP6_GROUP = "ff02::12"
ALL_NODES = "ff02::1"
RATE_WINDOW_S = 2.0       # adverts counted on both nodes over this long


def lan_mac(lab, fw):
    cp = lab.ip(fw, "-j", "link", "show", "dev", lab.ifname[(fw, "lan")])
    return json.loads(cp.stdout)[0]["address"]


def client_neighbour(lab, address):
    """(lladdr, state) of the client's neighbour entry for address, or (None, None)."""
    cp = lab.ip("client", "-6", "-j", "neigh", "show", address, "dev",
                lab.ifname[("client", "lan")], check=False)
    try:
        entries = json.loads(cp.stdout or "[]")
    except ValueError:
        return None, None
    if not entries:
        return None, None
    state = entries[0].get("state")
    return entries[0].get("lladdr"), ",".join(state) if isinstance(state, list) else state


def holds_address(lab, fw, link, address):
    cp = lab.ip(fw, "-6", "-j", "addr", "show", "dev", lab.ifname[(fw, link)], check=False)
    try:
        infos = json.loads(cp.stdout or "[]")
    except ValueError:
        return False
    return any(a.get("local") == address for i in infos for a in i.get("addr_info", []))


def snat6_ports_randomised(lab, node):
    """(entries whose NAT port differs from the client's, IPv6 entries to :9001 NATed to the
    WAN VIP6) in node's conntrack table."""
    cp = lab.nsexec(node, ["conntrack", "-L", "-f", "ipv6", "-p", "tcp", "--dport", "9001"],
                    check=False, timeout=10)
    k = n = 0
    for line in cp.stdout.splitlines():
        m = re.search(r"sport=(\d+) dport=9001 .*src=\S+ dst=(\S+) sport=9001 dport=(\d+)",
                      line)
        if not m or m.group(2) != netlab.WAN_VIP6:
            continue
        n += 1
        k += m.group(1) != m.group(3)
    return k, n


def ct6_entries(lab, node):
    cp = lab.nsexec(node, ["conntrack", "-L", "-f", "ipv6", "-p", "tcp", "--dport", "9001"],
                    check=False, timeout=10)
    return sum(1 for line in cp.stdout.splitlines() if line.startswith("tcp"))


def rejected(st):
    v = (st or {}).get("vrrp") or {}
    return {k: int(v.get(k, 0)) for k in ("rejected_ttl", "rejected_source",
                                          "rejected_malformed", "rejected_priority")}


def advert_problems(adverts, src, src_mac, priority):
    """What is wrong with the IPv6 adverts from src (RFC 5798 5.1.2, 5.2): a list of text."""
    bad = []
    for a in adverts:
        wrong = [k for k, ok in (("dst", a["dst"] == VRRP6_GROUP),
                                 ("hop_limit", a["hop_limit"] == 255),
                                 ("version", a["version"] == 3), ("type", a["type"] == 1),
                                 ("vrid", a["vrid"] == netlab.VRID),
                                 ("priority", a["priority"] == priority),
                                 ("interval", a["interval_cs"] == netlab.ADVERT_INTERVAL_CS),
                                 ("addresses", a["addresses"] == [netlab.LAN_VIP6]),
                                 ("checksum", a["checksum_ok"]),
                                 ("src_mac", a["src_mac"] == src_mac)) if not ok]
        if wrong:
            bad.append(f"{src}: {','.join(wrong)} in {json.dumps(a, sort_keys=True)}")
    return bad


def crash6_run(lab, args, checks):
    sniffer = sc.start_sniffer(lab)
    mac = {fw: lan_mac(lab, fw) for fw in FWS}
    ll = {fw: netlab.ADDR6[fw]["lan_ll"] for fw in FWS}
    out("lan_link_local", json.dumps(ll, sort_keys=True))
    master, backup = sc.start_pair(lab)
    out("master_before", master)
    checks.check(master == "fw1", "initial Master is fw1 (priority 150, started first)",
                 f"got {master}")

    # Every advert the Master sends, on the LAN (IPv6) and the WAN (IPv4), is accepted.
    st0 = {fw: lab.status(fw) for fw in FWS}
    time.sleep(RATE_WINDOW_S)
    st1 = {fw: lab.status(fw) for fw in FWS}
    sent = sc.counter(st1[master], "vrrp", "adverts_sent") - \
        sc.counter(st0[master], "vrrp", "adverts_sent")
    got = sc.counter(st1[backup], "vrrp", "adverts_received") - \
        sc.counter(st0[backup], "vrrp", "adverts_received")
    out("adverts_sent_by_master_lan_and_wan", sent)
    out("adverts_accepted_by_backup", got)
    checks.check(sent > 0 and got >= 0.9 * sent,
                 f"{backup} accepted the Master's adverts on both links (IPv6 LAN, IPv4 WAN)",
                 f"{got} accepted of {sent} sent in {RATE_WINDOW_S:.0f} s")

    total_s = sc.PRE_FAILOVER_S + sc.POST_FAILOVER_S + 30
    server, client, ready = sc.start_traffic(lab, args.sessions, total_s,
                                             server_addr=netlab.SERVER6)
    checks.check(ready["open"] == args.sessions, "all IPv6 sessions connected through the Master",
                 f"{ready['open']}/{args.sessions}")
    k_rand, n_rand = snat6_ports_randomised(lab, master)
    out("snat6_ports_randomised", f"{k_rand}/{n_rand}")
    checks.check(n_rand >= args.sessions and k_rand >= 0.9 * n_rand,
                 "lab sanity: the Master SNATs the IPv6 sessions to the WAN VIP6 with new ports",
                 f"{k_rand}/{n_rand} entries with a NAT port != client port")
    neigh_before = client_neighbour(lab, netlab.LAN_VIP6)
    out("client_neighbour_lan_vip6_before", json.dumps(neigh_before))
    checks.check(neigh_before[0] == mac[master],
                 f"the client reaches {netlab.LAN_VIP6} at {master}'s MAC", f"{neigh_before}")
    time.sleep(max(0.0, sc.PRE_FAILOVER_S - 0.3))
    out("backup_conntrack_tcp6_entries_before", ct6_entries(lab, backup))
    before = {fw: lab.status(fw) for fw in FWS}

    event_ns = sc.crash_node(lab, master)
    out("event_at_s", f"{lab.rel_s(event_ns):.3f}")
    seen_ns = None
    try:
        wait_for(lambda: lab.state(backup) == "Master", 15, interval=0.02,
                 what=f"{backup} to become Master")
        seen_ns = mono_ns()
    except LabTimeout as e:
        lab.log(str(e))
    neigh_ns = None
    try:
        wait_for(lambda: client_neighbour(lab, netlab.LAN_VIP6)[0] == mac[backup], 5,
                 interval=0.02, what=f"the client's neighbour entry to move to {backup}")
        neigh_ns = mono_ns()
    except LabTimeout as e:
        lab.log(str(e))
    neigh_after = client_neighbour(lab, netlab.LAN_VIP6)
    if seen_ns is not None:
        ms, source = sc.takeover_time(lab, backup, event_ns, seen_ns)
        out("takeover_ms_after_crash", f"{ms:.0f}")
        out("takeover_source", source)
    if neigh_ns is not None:
        out("client_neighbour_moved_ms_after_crash (poll)", f"{(neigh_ns - event_ns) / 1e6:.0f}")
    vip_moved = holds_address(lab, backup, "lan", netlab.LAN_VIP6)

    remaining = event_ns / 1e9 + sc.POST_FAILOVER_S - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    window = {"start_ns": event_ns - int(sc.WINDOW_BEFORE_S * 1e9),
              "end_ns": event_ns + int(sc.WINDOW_AFTER_S * 1e9)}
    cdoc, sdoc = sc.stop_traffic(lab, server, client, window)
    sniff = sc.stop_sniffer(lab, sniffer)
    lab.log("traffic and sniffer stopped")
    sc.print_role_log(lab)

    masters = lab.who_is_master()
    master_after = masters[0] if len(masters) == 1 else (",".join(masters) or "none")
    out("master_after", master_after)
    st_new = lab.status(backup) or {}
    out("new_master_reason", (st_new.get("group") or {}).get("last_reason"))
    probes = sdoc["probes"]
    win = probes.get("window") or {}
    gap_ms = win.get("ms")
    out("failover_gap_ms", f"{gap_ms:.0f}" if gap_ms is not None else "unknown")
    sent = (cdoc.get("probes") or {}).get("sent", 0)
    out("probes_lost", sent - probes["unique"])
    k, t, reasons, _pre = sc.analyse_sessions(cdoc, event_ns)
    out("sessions_survived", f"{k}/{t}")
    out("sessions_lost_reasons",
        ", ".join(f"{r}={n}" for r, n in reasons.most_common()) or "none")

    # -- what the client saw on the LAN --
    v6 = sniff["vrrp6"]
    pre = [a for a in v6 if a["t_ns"] < event_ns]
    post = [a for a in v6 if a["t_ns"] >= event_ns]
    by_src = {}
    for a in v6:
        by_src.setdefault(a["src"], []).append(a)
    out("lan_ipv6_adverts_by_source", json.dumps({s: len(v) for s, v in by_src.items()},
                                                 sort_keys=True))
    out("lan_ipv4_adverts", len(sniff["vrrp4"]))
    if v6:
        out("lan_ipv6_advert_example", json.dumps(v6[0], sort_keys=True))
    pre_master = [a for a in pre if a["src"] == ll[master]]
    post_backup = [a for a in post if a["src"] == ll[backup]]
    checks.check(len(pre_master) >= 10 and all(a["src"] == ll[master] for a in pre),
                 f"before the crash only {master} ({ll[master]}) sends IPv6 adverts on the LAN",
                 f"{len(pre_master)} of {len(pre)}")
    problems = advert_problems(pre_master, ll[master], mac[master], netlab.PRIORITY[master]) + \
        advert_problems(post_backup, ll[backup], mac[backup], netlab.PRIORITY[backup])
    checks.check(not problems, "every IPv6 advert: to ff02::12, hop limit 255, v3 type 1, VRID "
                 "51, the sender's priority, lists fd00:1::1, checksum correct, sender's MAC",
                 "; ".join(problems[:3]) or f"{len(pre_master) + len(post_backup)} adverts")
    checks.check(len(post_backup) >= 10, f"after the crash {backup} ({ll[backup]}) sends IPv6 "
                 "adverts on the LAN", f"{len(post_backup)}")
    checks.check(not sniff["vrrp4"], "no IPv4 adverts on the LAN", f"{len(sniff['vrrp4'])}")

    nas = [n for n in sniff["na"] if n["t_ns"] >= event_ns and n["target"] == netlab.LAN_VIP6
           and n["src_mac"] == mac[backup]]
    out("unsolicited_na_after_crash", json.dumps(nas[:1], sort_keys=True))
    out("unsolicited_na_count", len(nas))
    good_na = [n for n in nas if n["override"] and not n["solicited"] and n["hop_limit"] == 255
               and n["dst"] == ALL_NODES and n["target_mac"] == mac[backup]]
    checks.check(bool(good_na), f"{backup} announced {netlab.LAN_VIP6} by unsolicited NA "
                 "(Override, not Solicited, hop limit 255, to ff02::1, its MAC)",
                 f"{len(good_na)} of {len(nas)} NAs for it")
    if good_na:
        out("na_ms_after_crash", f"{(good_na[0]['t_ns'] - event_ns) / 1e6:.0f}")

    # -- assertions on the failover --
    checks.check(master_after == backup, f"{backup} is the only Master after the crash",
                 f"master_after={master_after}")
    checks.check(vip_moved, f"{backup} holds {netlab.LAN_VIP6} on its LAN link")
    out("client_neighbour_lan_vip6_after", json.dumps(neigh_after))
    checks.check(neigh_after[0] == mac[backup],
                 f"the client's neighbour entry for {netlab.LAN_VIP6} moved to {backup}'s MAC",
                 f"{neigh_after}")
    checks.check(t >= args.sessions, f"at least {args.sessions} IPv6 sessions before the crash",
                 f"T={t}")
    checks.check(k == t, "every pre-existing IPv6 session survived", f"{k}/{t}")
    checks.check(gap_ms is not None and gap_ms < sc.GAP_LIMIT_MS and win.get("resumed"),
                 f"IPv6 failover gap < {sc.GAP_LIMIT_MS:.0f} ms", f"{gap_ms} ms")
    counts = {master: rejected(before[master]), backup: rejected(st_new)}
    out("rejected_adverts", json.dumps(counts, sort_keys=True))
    checks.check(all(v == 0 for c in counts.values() for v in c.values()),
                 "no advert rejected (TTL/hop limit, source, malformed, priority) on either node",
                 json.dumps(counts, sort_keys=True))


def client_link_local(lab):
    """The client's own (kernel-made) link-local address, once DAD is done."""
    def ready():
        cp = lab.ip("client", "-6", "-j", "addr", "show", "dev", lab.ifname[("client", "lan")],
                    "scope", "link")
        for info in json.loads(cp.stdout or "[]"):
            for a in info.get("addr_info", []):
                if a.get("local", "").startswith("fe80:") and not a.get("tentative"):
                    return a["local"]
        return None
    return wait_for(ready, 5, what="the client's link-local address")


def inject_case(lab, checks, what, sender, inject_args, key, counting):
    """Sends the adverts, waits (bounded) for `key` to rise on every node of `counting`, then
    checks that no role or transition count changed."""
    before = {fw: lab.status(fw) for fw in FWS}
    roles0 = sc.roles_and_transitions(lab)
    cp = lab.nsexec(sender, [sc.PY, sc.INJECT, "vrrp6", *inject_args], timeout=15)
    lab.log(f"{what}: {cp.stdout.strip().splitlines()[-1]}")

    def risen():
        now = {fw: lab.status(fw) for fw in FWS}
        return now if all(sc.counter(now[fw], "vrrp", key) > sc.counter(before[fw], "vrrp", key)
                          for fw in counting) else None
    try:
        after = wait_for(risen, 5, interval=0.1, what=f"{key} to rise")
    except LabTimeout:
        after = {fw: lab.status(fw) for fw in FWS}
    for fw in counting:
        b, a = sc.counter(before[fw], "vrrp", key), sc.counter(after[fw], "vrrp", key)
        out(f"{fw}_{key}", f"{b} -> {a}")
        checks.check(a > b, f"{fw} counts {what} in vrrp.{key}", f"{b} -> {a}")
    time.sleep(1.5)   # several Master_Down_Intervals (3 x 100 ms + skew)
    roles1 = sc.roles_and_transitions(lab)
    checks.check(roles1 == roles0, f"{what} changed no role (state, transitions)",
                 f"{roles0} -> {roles1}")


def bad_input6_run(lab, args, checks):
    master, backup = sc.start_pair(lab)
    out("master_before", master)
    lan = {n: lab.ifname[(n, "lan")] for n in ("client", "fw1")}
    stranger = client_link_local(lab)
    out("stranger_link_local", stranger)
    common = ["--vrid", str(netlab.VRID), "--addr", netlab.LAN_VIP6]
    inject_case(lab, checks, f"a priority-255 advert from the stranger {stranger}", "client",
                ["--src", stranger, "--ifname", lan["client"], "--priority", "255", *common],
                "rejected_source", FWS)
    inject_case(lab, checks, f"a priority-255 advert from the global {netlab.CLIENT6}",
                "client", ["--src", netlab.CLIENT6, "--ifname", lan["client"], "--priority",
                           "255", *common], "rejected_source", FWS)
    peer_ll = netlab.ADDR6["fw1"]["lan_ll"]
    inject_case(lab, checks, f"a priority-0 advert with hop limit 64 from fw1's {peer_ll}",
                "fw1", ["--src", peer_ll, "--ifname", lan["fw1"], "--priority", "0",
                        "--hop-limit", "64", *common], "rejected_ttl", ["fw2"])
    inject_case(lab, checks, f"a priority-0 advert with a wrong checksum from fw1's {peer_ll}",
                "fw1", ["--src", peer_ll, "--ifname", lan["fw1"], "--priority", "0",
                        "--bad-checksum", *common], "rejected_malformed", ["fw2"])
    masters = lab.who_is_master()
    out("master_after", ",".join(masters) or "none")
    checks.check(masters == [master], "the original Master is still the only Master",
                 f"{masters}")


def freeze6_run(lab, args, checks):
    sc.failover_run(lab, args, checks, "freeze")
    counts = {fw: rejected(lab.status(fw)) for fw in FWS}
    out("rejected_adverts", json.dumps(counts, sort_keys=True))
    checks.check(all(v == 0 for c in counts.values() for v in c.values()),
                 "no advert rejected (TTL/hop limit, source, malformed, priority) on either node",
                 json.dumps(counts, sort_keys=True))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=["crash6", "bad_input6", "freeze6"])
    labrun.add_common_args(ap, max_seconds=120)
    ap.add_argument("--sessions", type=int, default=100)
    args = ap.parse_args(argv)
    body = {"crash6": crash6_run, "bad_input6": bad_input6_run,
            "freeze6": freeze6_run}[args.scenario]
    return labrun.run(args, args.scenario, body,
                      lab_kwargs={"ipv6": True, "lan_adverts": "ipv6"},
                      finish=sc.print_summary)


if __name__ == "__main__":
    sys.exit(main())
