#!/usr/bin/env python3
"""fwha lab scenarios: real fwhad pairs in network namespaces (see netlab.py, traffic.py).

    scenario.py {crash,control,kill,graceful,switchover,freeze,carrier,sync_cut,late_adverts,
                 bad_input}
                [--assert]
                [--sessions N]
                [--verbose]

crash      The Master is frozen (SIGSTOP: no goodbye), its links are cut, then it is killed
           (SIGKILL) while >= 100 TCP sessions and a 1 ms probe stream run through it.
           Asserts: every pre-existing session survives, >= 100 sessions, failover gap
           (longest interval without probes at the server) < 1000 ms.
kill       SIGKILL to the Master's fwhad alone: the node stays up, its kernel keeps forwarding
           and keeps the VIPs fwhad added. fwhad is started again 1 s later, as systemd
           does (Restart=on-failure, RestartSec=1). Asserts: the peer takes over
           (master_down), every session survives, gap < 1000 ms; the restarted fwhad is
           Backup and has removed the VIPs its predecessor left.
control    The same crash with `conntrack = false` on both nodes. Asserts that sessions ARE
           lost: proves that the crash scenario can fail, i.e. that the ruleset (new TCP only
           with SYN) and the randomised SNAT ports leave no accidental way to survive.
graceful   SIGTERM to the Master's fwhad: it hands the group over on the sync link (the peer
           takes over once it holds every entry; priority 0 only if it cannot). Asserts:
           fwhad exits 0, the peer took over by handover, every session survives, gap
           < 1000 ms.
switchover `fwhactl switchover` on the Master. Asserts: fwhactl exits 0, the peer is the only
           Master (reason handover_received), the old Master is Backup (handed_over), every
           session survives, gap < 50 ms (issue 4's target is 10 ms: the benchmark
           measures it; a shared CI machine gets slack).
freeze     The Master's fwhad alone is stopped (SIGSTOP) for 2 s, then continued: the node's
           kernel keeps forwarding, the Backup takes over. Asserts: the woken node steps down
           (reason "stalled") and stays Backup, every session survives, and no gap in the
           whole run reaches 1000 ms (no second outage when it wakes).
carrier    The switch port of the Master's LAN link goes down (its interface loses carrier),
           then up again after 1 s. Asserts: the Master goes to Fault (reason link_down), the
           peer takes over by handover on the sync link (not after Skew_Time), every session
           survives, gap < 1000 ms, and with carrier back the node is Backup (no preemption).
sync_cut   The sync link goes down for 16 s, then up. Asserts: no role changes (the adverts
           still arrive), both nodes log the split-brain alert, and both say when it is back.
late_adverts
           The Master's adverts are dropped on its own way out (nft, fw1) until the Backup's
           Master_Down_Interval plus half an interval has passed since the last advert it
           heard (its three alive graces, one interval each, end 2.5 intervals later), twice:
           with the pair idle, and while ct_load creates 10k entries/s on fw1 (its flow
           frames then stand in for the 5 ms heartbeat).
           Asserts, each time: the Backup stays Backup because the Master still speaks on the
           sync link (vrrp.alive_graces rises on fw2, no transition); idle, fw1 sends ~200
           heartbeats a second; under load under a quarter of that (sync.heartbeats_sent),
           and ~200/s again once the load has ended (the timer is back).
bad_input  (a) --check-config rejects a misspelt key and an out-of-range value with exit 2,
           naming the key and the line; (b) a VRRP advert from a stranger (priority 255) is
           counted in vrrp.rejected_source and changes no role; (c) an advert with TTL 64
           that claims to come from the peer is counted in vrrp.rejected_ttl on fw2 and
           changes no role; (d) a rogue on the LAN (the client) sends priority-255 adverts
           with fw2's address and TTL 255: fw1 refuses them (vrrp.rejected_priority: fw2
           told fw1 its priority on the sync link), no role changes, the VIP stays; (e)
           sync frames with a 4 GiB length, an unparsable body, a stream ending inside a
           frame, and a gap in a FlowBatch numbering (after a valid Hello in the peer's
           name) are counted in sync.frames_rejected (the gap in sync.sequence_gaps too),
           fwhad survives, the sync connection comes back, and the Master resyncs the sink,
           which completes the round and holds the state again.

Output is `key: value` lines; every assertion prints a `check:` line saying what it checked.
Exit status: 0 = pass (or no --assert), 1 = an assertion failed, 2 = the lab itself failed,
77 = skipped (not root), which meson reports as SKIP. Every scenario has a wall-clock cap
(--max-seconds, default 240 s, below the 300 s meson timeout); teardown runs on every exit.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from netlab import FWS, LabError, LabInterrupted, LabTimeout, mono_ns, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TRAFFIC = os.path.join(HERE, "traffic.py")
INJECT = os.path.join(HERE, "inject.py")
PY = sys.executable or "python3"
SNIFF = os.path.join(HERE, "sniff.py")

GAP_LIMIT_MS = 1000.0
SWITCHOVER_GAP_LIMIT_MS = 50.0
KILL_RESTART_S = 1.0           # kill: systemd's RestartSec
NEXT_HOP_INTERVAL_MS = 100     # next_hop: both nodes ping the server every 100 ms,
NEXT_HOP_MISSES = 3            # and are degraded after 3 unanswered
FREEZE_S = 2.0                 # freeze: how long the Master's fwhad is stopped
STALL_LIMIT_S = 5.0
PRE_FAILOVER_S = 3.0
POST_FAILOVER_S = 7.5          # >= 6 s so a 5 s stall is visible
WINDOW_BEFORE_S = 0.1
WINDOW_AFTER_S = 5.0


# The figures a reader looks for, repeated as the last lines of the output (the demo's result).
SUMMARY_KEYS = ("master_before", "master_after", "takeover_ms_after_crash", "failover_gap_ms",
                "sessions_survived")
summary = {}


def out(key, value):
    if key in SUMMARY_KEYS:
        summary[key] = value
    print(f"{key}: {value}", flush=True)


def print_summary():
    if "failover_gap_ms" not in summary:
        return
    print("--- summary ---", flush=True)
    for key in SUMMARY_KEYS:
        if key in summary:
            print(f"{key}: {summary[key]}", flush=True)


class Checks:
    def __init__(self):
        self.failed = []

    def check(self, ok, what, detail=""):
        print(f"check: {what}: {'PASS' if ok else 'FAIL'}" + (f" ({detail})" if detail else ""),
              flush=True)
        if not ok:
            self.failed.append(f"{what}" + (f" ({detail})" if detail else ""))
        return ok


# --- shared steps ----------------------------------------------------------------------------

def _alive_or_raise(lab, fws):
    for fw in fws:
        p = lab.fwhad_procs.get(fw)
        if p is not None and not p.running():
            raise LabError(f"fwhad on {fw} exited early with code {p.popen.returncode}")


def start_pair(lab):
    """Start fw1 then fw2; wait for one Master, one Backup, sync connected both ways.

    fw1 is started first and must answer on its control socket before fw2 starts, so the
    election is deterministic: fw1 (priority 150) is expected to become Master.
    """
    lab.require_binaries()
    lab.start_fwhad("fw1")
    wait_for(lambda: (_alive_or_raise(lab, ["fw1"]), lab.status("fw1"))[1], 15,
             what="fw1 control socket")
    lab.start_fwhad("fw2")

    both_master_since = [None]

    def settled():
        _alive_or_raise(lab, FWS)
        st = {fw: lab.status(fw) for fw in FWS}
        if not all(st.values()):
            return None
        roles = sorted(s["group"]["state"] for s in st.values())
        if roles == ["Master", "Master"]:
            # Fail fast on a lasting split brain instead of waiting out the timeout.
            both_master_since[0] = both_master_since[0] or time.monotonic()
            if time.monotonic() - both_master_since[0] > 5:
                seen = {fw: (s["vrrp"].get("adverts_received"), s["vrrp"].get("rejected_source"),
                             s["vrrp"].get("rejected_ttl")) for fw, s in st.items()}
                raise LabError("split brain: both nodes Master for > 5 s; (adverts_received, "
                               f"rejected_source, rejected_ttl) per node: {seen}")
        else:
            both_master_since[0] = None
        if roles != ["Backup", "Master"]:
            return None
        if not all(s.get("sync", {}).get("connected") for s in st.values()):
            return None
        return st

    try:
        st = wait_for(settled, 40, interval=0.1,
                      what="one Master, one Backup and sync connected on both")
    except LabTimeout as e:
        raise LabTimeout(f"{e}; last states {lab.states()}") from None
    master = next(fw for fw in FWS if st[fw]["group"]["state"] == "Master")
    backup = "fw2" if master == "fw1" else "fw1"
    # Stable for a while: no flapping at start-up (keepalived flaps here at 10 ms adverts).
    time.sleep(1.0)
    st2 = {fw: lab.status(fw) for fw in FWS}
    for fw in FWS:
        if not st2[fw] or st2[fw]["group"]["state"] != st[fw]["group"]["state"]:
            changes = "; ".join(line.strip()[-90:] for f in FWS for _, line in lab.role_changes(f))
            why = "no status answer" if not st2[fw] else "role changed"
            raise LabError(f"roles not stable after start-up ({fw}: {why}): {lab.states()}; "
                           f"role changes logged: {changes}")
    since = st2[master]["group"].get("since_ms")
    when = (f" since +{lab.rel_s(int(since * 1e6)):.3f}s"
            if isinstance(since, (int, float)) and since * 1e6 > lab.t0_ns else "")
    lab.log(f"pair up: {master} is Master{when}, {backup} is Backup, sync connected")
    return master, backup


def start_traffic(lab, sessions, duration, server_addr=None):
    """server_addr: the server's address the traffic goes to (default traffic.py's, the IPv4
    one); an IPv6 address makes it IPv6 traffic."""
    srv_ready, cli_ready = lab.path("server.ready"), lab.path("client.ready")
    addr = ["--addr", server_addr] if server_addr else []
    to = ["--server", server_addr] if server_addr else []
    server = lab.spawn("server", [PY, TRAFFIC, "server", "--out", lab.path("server.json"),
                                  "--ready-file", srv_ready, "--duration", str(duration),
                                  "--window-file", lab.path("window.json"), *addr],
                       "traffic-server")
    wait_for(lambda: os.path.exists(srv_ready), 15, what="traffic server ready")
    client = spawn_client(lab, "client.json", cli_ready, "traffic-client", sessions, duration,
                          *to)
    try:
        wait_for(lambda: os.path.exists(cli_ready), 30, what="traffic client ready")
    except LabTimeout:
        raise LabError("traffic did not come up (client not ready in 30 s); "
                       "are the VIPs on the Master?") from None
    with open(cli_ready) as f:
        ready = json.load(f)
    lab.log(f"traffic started: {ready['open']} TCP sessions open, {ready['failed']} failed, "
            f"probes every 1 ms")
    return server, client, ready


def spawn_client(lab, out_name, ready, name, sessions, duration, *extra):
    """A traffic.py client in the client namespace, writing out_name in the run dir."""
    return lab.spawn("client", [PY, TRAFFIC, "client", "--out", lab.path(out_name),
                                "--ready-file", ready, "--duration", str(duration),
                                "--sessions", str(sessions),
                                "--stall-timeout", str(STALL_LIMIT_S), *extra], name)


def start_client(lab, tag, sessions, duration, *extra):
    """Another traffic client (client-<tag>.json, no probes: start_traffic's client measures
    the gap), through whoever is Master now; waits until its sessions are up. Returns the
    process and its ready document."""
    ready = lab.path(f"client-{tag}.ready")
    proc = spawn_client(lab, f"client-{tag}.json", ready, f"traffic-client-{tag}", sessions,
                        duration, "--probe-interval-ms", "0", *extra)
    wait_for(lambda: os.path.exists(ready), 30, what=f"traffic client {tag} ready")
    with open(ready) as f:
        doc = json.load(f)
    lab.log(f"client {tag}: {doc['open']} sessions open, {doc['failed']} failed")
    return proc, doc


def stop_traffic(lab, server, client, window):
    with open(lab.path("window.json"), "w") as f:
        json.dump(window, f)
    for proc in (client, server):   # client first: the server keeps counting until the end
        proc.signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=15)
        except Exception:  # noqa: BLE001
            proc.signal(signal.SIGKILL)
            raise LabError(f"{proc.name} did not stop on SIGTERM") from None
    docs = []
    for name in ("client.json", "server.json"):
        try:
            with open(lab.path(name)) as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            raise LabError(f"no traffic result {name}: {e}") from None
    return docs


def backup_ct_entries(lab, node, family="ipv4"):
    cp = lab.nsexec(node, ["conntrack", "-L", "-f", family, "-p", "tcp", "--dport", "9001"],
                    check=False, timeout=10)
    return sum(1 for line in cp.stdout.splitlines() if line.startswith("tcp"))


def snat_bindings(lab, node, family="ipv4"):
    """client port -> NAT port of node's conntrack entries to :9001 NATed to the WAN VIP."""
    wan_vip = netlab.WAN_VIP6 if family == "ipv6" else netlab.WAN_VIP
    cp = lab.nsexec(node, ["conntrack", "-L", "-f", family, "-p", "tcp", "--dport", "9001"],
                    check=False, timeout=10)
    out_ = {}
    for line in cp.stdout.splitlines():
        m = re.search(r"sport=(\d+) dport=9001 .*src=\S+ dst=(\S+) sport=9001 dport=(\d+)",
                      line)
        if m and m.group(2) == wan_vip:
            out_[int(m.group(1))] = int(m.group(3))
    return out_


def snat_ports_randomised(lab, node, family="ipv4"):
    """(entries whose NAT source port differs from the client's port, entries to :9001 NATed
    to the WAN VIP) in node's conntrack table."""
    bindings = snat_bindings(lab, node, family)
    return sum(1 for c, n in bindings.items() if c != n), len(bindings)


def analyse_sessions(client_doc, event_ns):
    stop_ns = client_doc["stop_ns"]
    pre = [s for s in client_doc["sessions"]
           if s["first_echo_ns"] is not None and s["first_echo_ns"] < event_ns]
    survived, reasons = [], collections.Counter()
    for s in pre:
        if s["error"]:
            reasons[s["error"]] += 1
        elif s["last_echo_ns"] is None or s["last_echo_ns"] <= event_ns:
            reasons["no data after failover"] += 1
        elif s["max_echo_gap_ms"] >= STALL_LIMIT_S * 1000:
            reasons["stall > 5 s"] += 1
        elif stop_ns - s["last_echo_ns"] >= STALL_LIMIT_S * 1e9:
            reasons["stalled at the end"] += 1
        else:
            survived.append(s)
    return len(survived), len(pre), reasons, pre


def takeover_time(lab, new_master, event_ns, poll_seen_ns):
    """ms from the event to the new Master; from status since_ms when it is a plausible
    monotonic timestamp, else from when our polling first saw it."""
    st = lab.status(new_master)
    since = (st or {}).get("group", {}).get("since_ms")
    ev_ms = event_ns / 1e6
    if isinstance(since, (int, float)) and ev_ms - 1000 <= since <= mono_ns() / 1e6 + 10:
        return since - ev_ms, "status.since_ms"
    return (poll_seen_ns - event_ns) / 1e6, "poll"


def takeover_log_lines(lab, node):
    """fwhad's own account of a takeover after a lost Master (daemon.cpp settle_then)."""
    try:
        with open(lab.log_path(node), errors="replace") as fh:
            return [line.strip()[-160:] for line in fh if "takeover" in line and "daemon" in line]
    except OSError:
        return []


def print_role_log(lab):
    """Role changes from both fwhad logs, in time order, relative to the lab's start."""
    events = [(wall or 0.0, fw, line) for fw in FWS for wall, line in lab.role_changes(fw)]
    for wall, fw, line in sorted(events):
        when = f"+{lab.wall_to_rel(wall):.3f}s" if wall else "?"
        lab.log(f"role change logged by {fw} at {when}: {line.strip()}")


def crash_node(lab, node, event_ns=None):
    """The crash: freeze every process of node (SIGSTOP, so no goodbye), cut all its links,
    then SIGKILL them. Returns the time of the freeze (monotonic ns)."""
    event_ns = event_ns or mono_ns()
    lab.freeze(node)
    cut_ns = mono_ns()
    lab.cut_links(node)
    kill_ns = mono_ns()
    lab.kill9(node)
    lab.log(f"crash: {node} frozen (SIGSTOP), links cut after "
            f"{(cut_ns - event_ns) / 1e6:.1f} ms, killed (SIGKILL) after "
            f"{(kill_ns - event_ns) / 1e6:.1f} ms")
    out("links_cut_ms_after_freeze", f"{(cut_ns - event_ns) / 1e6:.1f}")
    return event_ns


def start_sniffer(lab):
    ready = lab.path("sniff.ready")
    proc = lab.spawn("client", [PY, SNIFF, "--ifname", lab.ifname[("client", "lan")],
                                "--out", lab.path("sniff.json"), "--ready-file", ready,
                                "--duration", "300"], "sniff")
    wait_for(lambda: os.path.exists(ready), 10, what="sniffer ready")
    return proc


def stop_sniffer(lab, proc):
    return netlab.stop_and_read_json(proc, lab.path("sniff.json"))


def server_drops_pings_from(lab, fw):
    """The server stops answering `fw`'s echo requests (its tracked next-hop fails for it
    alone); nothing else changes."""
    path = lab.path(f"drop-pings-{fw}.nft")
    with open(path, "w") as fh:
        fh.write("table ip fwha_lab_nh {\n  chain input {\n    type filter hook input "
                 "priority 0; policy accept;\n    ip saddr " + netlab.ADDR[fw]["wan"] +
                 " icmp type echo-request drop\n  }\n}\n")
    lab.nsexec("server", ["nft", "-f", path])


def next_hop_checks(lab, checks, master, backup):
    """The first Master said it was degraded and handed over; then the server ignores the new
    Master too: it asks, the first one (degraded too) refuses, nothing moves."""
    old = lab.status(master) or {}
    track = old.get("track") or {}
    out(f"{master}_track", json.dumps(track, sort_keys=True))
    checks.check(track.get("degraded") is True and
                 [h.get("reachable") for h in track.get("next_hops", [])] == [False],
                 f"{master} reports its tracked next-hop unreachable (degraded)", json.dumps(track))
    with open(lab.log_path(master), errors="replace") as fh:
        log = fh.read()
    checks.check("degraded Master: handing the group over" in log,
                 f"{master} logged that it hands over because it is degraded")
    transitions = {fw: ((lab.status(fw) or {}).get("group") or {}).get("transitions")
                   for fw in FWS}
    server_drops_pings_from(lab, backup)
    lab.log(f"next_hop: the server stops answering {backup}'s echo requests too")
    try:
        wait_for(lambda: ((lab.status(backup) or {}).get("track") or {}).get("degraded"), 5,
                 interval=0.05, what=f"{backup} degraded")
        both = True
    except LabTimeout:
        both = False
    checks.check(both, f"{backup} reports itself degraded once the server ignores it too")
    time.sleep(1.0)  # a round or more: time to (wrongly) hand over
    with open(lab.log_path(backup), errors="replace") as fh:
        stayed = "is degraded too" in fh.read()
    states = {fw: lab.state(fw) for fw in FWS}
    after = {fw: ((lab.status(fw) or {}).get("group") or {}).get("transitions") for fw in FWS}
    out("states_when_both_degraded", json.dumps(states, sort_keys=True))
    checks.check(states == {backup: "Master", master: "Backup"} and after == transitions and
                 stayed, f"with both degraded, {backup} stays Master and says why (its peer is "
                 "degraded too); no transition on either node",
                 f"{states}, transitions {transitions} -> {after}, logged: {stayed}")


def client_neighbour_mac(lab):
    return neighbour_mac(lab, "client", netlab.LAN_VIP)


def neighbour_mac(lab, node, address):
    m = re.search(r"lladdr (\S+)", lab.ip(node, "neigh", "show", address).stdout)
    return m.group(1) if m else None


def link_state(lab, node, link):
    """(exists, up, LAN VIP on it) of `link` in `node`'s namespace."""
    cp = lab.ip(node, "-o", "addr", "show", "dev", link, check=False)
    if cp.returncode != 0:
        return False, False, False
    flags = lab.ip(node, "-o", "link", "show", "dev", link).stdout
    return True, ",UP" in flags or "<UP" in flags, f"{netlab.LAN_VIP}/" in cp.stdout


def virtual_mac_checks(lab, checks, kind, master, backup, mac_before):
    """The VIPs' MAC did not change for the client; the new Master's virtual MAC link is up
    with the VIP, the old Master's (when its fwhad runs) is down without it."""
    mac_after = client_neighbour_mac(lab)
    out("client_lan_vip_mac_after", mac_after)
    checks.check(mac_after == mac_before == netlab.LAN_VMAC, "the client's neighbour entry "
                 "for the LAN VIP is the same virtual MAC after the failover (no ARP update "
                 "needed)", f"{mac_before} -> {mac_after}")
    wan_mac = neighbour_mac(lab, "server", netlab.WAN_VIP)
    out("server_wan_vip_mac_after", wan_mac)
    checks.check(wan_mac in (None, netlab.LAN_VMAC), "the server knows the WAN VIP at the "
                 "virtual MAC after the failover, if at all", f"{wan_mac}")
    lab.ip("client", "neigh", "flush", "to", netlab.ADDR[backup]["lan"], check=False)
    lab.nsexec("client", ["ping", "-c", "1", "-W", "1", netlab.ADDR[backup]["lan"]], check=False)
    own = neighbour_mac(lab, "client", netlab.ADDR[backup]["lan"])
    lan_mac = lab.ip(backup, "-o", "link", "show", "dev", lab.ifname[(backup, "lan")]).stdout
    out(f"client_{backup}_lan_address_mac", own)
    checks.check(own is not None and own in lan_mac and own != netlab.LAN_VMAC,
                 f"the client resolves {backup}'s own LAN address to its own MAC, not the "
                 "virtual one (the link answers ARP for the VIPs only)", f"{own}")
    link = netlab.LAN_VMAC_LINK
    exists, up, has_vip = link_state(lab, backup, link)
    out(f"{backup}_{link}", f"exists={exists} up={up} lan_vip={has_vip}")
    checks.check(exists and up and has_vip, f"the new Master {backup} has {link} up with the "
                 "LAN VIP", f"exists={exists} up={up} lan_vip={has_vip}")
    sniffer = start_sniffer(lab)
    time.sleep(0.3)
    adverts = [a for a in stop_sniffer(lab, sniffer)["vrrp4"]
               if a["src"] == netlab.ADDR[backup]["lan"]]
    macs = sorted({a["src_mac"] for a in adverts})
    out(f"{backup}_advert_source_macs", ",".join(macs))
    checks.check(adverts and macs == [netlab.LAN_VMAC], f"{backup}'s adverts leave with the "
                 "virtual MAC as source (RFC 5798 7.3)", f"{len(adverts)} adverts from {macs}")
    if kind in ("switchover", "kill", "freeze"):  # the old Master's fwhad runs again
        exists, up, has_vip = link_state(lab, master, link)
        out(f"{master}_{link}", f"exists={exists} up={up} lan_vip={has_vip}")
        checks.check(exists and not up and not has_vip, f"the old Master {master} keeps {link} "
                     "down, without the LAN VIP", f"exists={exists} up={up} lan_vip={has_vip}")


def failover_run(lab, args, checks, kind):
    """crash / control / graceful: pair up, traffic, event, traffic, measure."""
    master, backup = start_pair(lab)
    out("master_before", master)
    checks.check(master == "fw1", "initial Master is fw1 (priority 150, started first)",
                 f"got {master}")
    total_s = PRE_FAILOVER_S + POST_FAILOVER_S + 30
    ipv6 = getattr(args, "ipv6", False)  # vrrp6.py passes its own arguments
    family = "ipv6" if ipv6 else "ipv4"
    out("traffic_family", family)
    server, client, ready = start_traffic(lab, args.sessions, total_s,
                                          server_addr=netlab.SERVER6 if ipv6 else None)
    checks.check(ready["open"] == args.sessions, "all sessions connected through the Master",
                 f"{ready['open']}/{args.sessions}")
    vmac = getattr(args, "virtual_mac", False)
    if vmac:
        mac_before = client_neighbour_mac(lab)
        out("client_lan_vip_mac_before", mac_before)
        checks.check(mac_before == netlab.LAN_VMAC, "the client reaches the LAN VIP at the "
                     "virtual MAC", f"{mac_before}")
        # The server learnt the WAN VIP from the SNATed packets' ARP: the Master must ask with
        # its own address (arp_announce 2), or the server would map the VIP to its real MAC.
        wan_mac = neighbour_mac(lab, "server", netlab.WAN_VIP)
        out("server_wan_vip_mac_before", wan_mac)
        checks.check(wan_mac in (None, netlab.LAN_VMAC), "the server knows the WAN VIP at the "
                     "virtual MAC, if at all (never at the Master's own MAC)", f"{wan_mac}")
    k_rand, n_rand = snat_ports_randomised(lab, master, family)
    out("snat_ports_randomised", f"{k_rand}/{n_rand}")
    checks.check(n_rand >= args.sessions and k_rand >= 0.9 * n_rand,
                 "lab sanity: the Master SNATs the sessions to the WAN VIP with new ports",
                 f"{k_rand}/{n_rand} entries with a NAT port != client port")
    time.sleep(max(0.0, PRE_FAILOVER_S - 0.3))

    st_b = lab.status(backup) or {}
    out("backup_sync_before", json.dumps(st_b.get("sync", {}), sort_keys=True))
    n_ct = backup_ct_entries(lab, backup, family)
    out("backup_conntrack_tcp_entries_before", n_ct)
    lab.log(f"{backup} holds {n_ct} replicated TCP conntrack entries for port 9001")

    exit_code = None
    event_ns = mono_ns()
    if kind in ("crash", "control"):
        crash_node(lab, master, event_ns)
    elif kind == "carrier":
        lab.set_switch_port(master, "lan", False)
        lab.log(f"carrier: {master}'s LAN switch port down ({master}'s LAN link loses carrier)")
    elif kind == "next_hop":
        server_drops_pings_from(lab, master)
        lab.log(f"next_hop: the server stops answering {master}'s echo requests")
    elif kind == "freeze":
        # Only fwhad stops: the node's kernel keeps forwarding with its VIPs until the Backup
        # takes over and announces them; then the frozen daemon wakes up.
        lab.fwhad_procs[master].signal(signal.SIGSTOP)
        lab.fwhad_procs[master].frozen = True
        lab.log(f"freeze: {master}'s fwhad stopped (SIGSTOP) for {FREEZE_S:.0f} s")
    elif kind == "kill":
        lab.fwhad_procs[master].signal(signal.SIGKILL)
        lab.fwhad_procs[master].popen.wait(timeout=5)
        lab.log(f"kill: {master}'s fwhad killed (SIGKILL); the node stays up")
    elif kind == "switchover":
        cp = netlab.run([lab.fwhactl, "-s", lab.socket_path(master), "switchover"],
                        check=False, timeout=10)
        switch_reply = (cp.returncode, (cp.stdout + cp.stderr).strip())
        lab.log(f"switchover: fwhactl on {master} exited {cp.returncode}: {switch_reply[1]}")
    else:
        lab.fwhad_procs[master].signal(signal.SIGTERM)
        lab.log(f"graceful: SIGTERM to {master}'s fwhad")
    out("event_at_s", f"{lab.rel_s(event_ns):.3f}")

    seen_ns = None
    try:
        wait_for(lambda: lab.state(backup) == "Master", 15, interval=0.02,
                 what=f"{backup} to become Master")
        seen_ns = mono_ns()
    except LabTimeout as e:
        lab.log(str(e))
    if kind == "freeze":
        time.sleep(max(0.0, event_ns / 1e9 + FREEZE_S - time.monotonic()))
        lab.fwhad_procs[master].signal(signal.SIGCONT)
        lab.fwhad_procs[master].frozen = False
        lab.log(f"freeze: {master}'s fwhad continued (SIGCONT)")
    if kind == "graceful":
        try:
            exit_code = lab.fwhad_procs[master].popen.wait(timeout=20)
        except Exception:  # noqa: BLE001
            exit_code = None
        lab.log(f"{master}'s fwhad exited with {exit_code}")
    if kind == "carrier":
        faulted = lab.status(master) or {}
        time.sleep(1.0)
        lab.set_switch_port(master, "lan", True)
        lab.log(f"carrier: {master}'s LAN switch port up again")
        time.sleep(1.0)  # link event, Fault -> Backup
    if kind == "freeze":
        time.sleep(1.0)  # time for the woken node to handle what queued up while it was stopped
    restarted = {}
    if kind == "kill":
        time.sleep(max(0.0, event_ns / 1e9 + KILL_RESTART_S - time.monotonic()))
        lab.start_fwhad(master)
        try:
            restarted = wait_for(lambda: (lambda s: s if (s or {}).get("group", {}).get(
                "state") in ("Backup", "Master") else None)(lab.status(master)), 10,
                interval=0.05, what=f"the restarted fwhad on {master}")
        except LabTimeout as e:
            lab.log(str(e))
        time.sleep(0.5)
        restarted = lab.status(master) or restarted
    masters = lab.who_is_master()
    master_after = masters[0] if len(masters) == 1 else (",".join(masters) or "none")
    out("master_after", master_after)
    woken = (lab.status(master) or {}) if kind == "freeze" else {}
    if seen_ns is not None:
        ms, source = takeover_time(lab, backup, event_ns, seen_ns)
        lab.log(f"new Master: {backup} since +{lab.rel_s(event_ns + ms * 1e6):.3f}s, "
                f"{ms:.0f} ms after the {kind} event ({source})")
        after = {"graceful": "sigterm", "switchover": "switchover",
                 "next_hop": "next_hop_lost"}.get(kind, "crash")
        out(f"takeover_ms_after_{after}", f"{ms:.0f}")
        out("takeover_source", source)

    remaining = event_ns / 1e9 + POST_FAILOVER_S - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    window = {"start_ns": event_ns - int(WINDOW_BEFORE_S * 1e9),
              "end_ns": event_ns + int(WINDOW_AFTER_S * 1e9)}
    cdoc, sdoc = stop_traffic(lab, server, client, window)
    lab.log("traffic stopped")
    print_role_log(lab)

    st_new = lab.status(backup) or {}
    out("new_master_sync", json.dumps(st_new.get("sync", {}), sort_keys=True))
    probes = sdoc["probes"]
    win = probes.get("window") or {}
    gap_ms = win.get("ms")
    out("failover_gap_ms", f"{gap_ms:.0f}" if gap_ms is not None else "unknown")
    out("probe_gap_resumed", win.get("resumed"))
    sent = (cdoc.get("probes") or {}).get("sent", 0)
    out("probes_sent", sent)
    out("probes_received", probes["unique"])
    out("probes_lost", sent - probes["unique"])
    out("probe_sources_seen", len(probes.get("sources", {})))
    cprobes = cdoc.get("probes") or {}
    at = cprobes.get("max_send_gap_at_ns")
    out("probe_sender_max_gap_ms", f"{cprobes.get('max_send_gap_ms', 0):.1f}" +
        (f" (at {(at - event_ns) / 1e6:+.0f} ms from the event)" if at else ""))
    out("probe_longest_gap_whole_run_ms", f"{probes['longest_gap_ms']:.0f}")
    k, t, reasons, _pre = analyse_sessions(cdoc, event_ns)
    out("sessions_survived", f"{k}/{t}")
    out("sessions_lost_reasons",
        ", ".join(f"{r}={n}" for r, n in reasons.most_common()) or "none")
    # How the server saw connections end before the client stopped (e.g. resets sent by a
    # new Master without state); ends caused by the client's own stop are not counted.
    ends = collections.Counter(c["end"] for c in sdoc["tcp"]["connections"]
                               if c["end"] and c["closed_ns"] < cdoc["stop_ns"])
    out("server_side_session_ends_before_stop", json.dumps(dict(ends), sort_keys=True))
    if kind == "graceful":
        out("old_master_exit_code", exit_code)
    new_reason = (st_new.get("group") or {}).get("last_reason")
    out("new_master_reason", new_reason)
    settle_lines = takeover_log_lines(lab, backup)
    out("new_master_takeover_log", " | ".join(settle_lines) or "none")
    if kind == "switchover":
        out("fwhactl_switchover_exit", switch_reply[0])
        out("fwhactl_switchover_reply", switch_reply[1])
        old = lab.status(master) or {}
        out("old_master_state", (old.get("group") or {}).get("state"))
        out("old_master_reason", (old.get("group") or {}).get("last_reason"))
    if kind == "freeze":
        st_old = lab.status(master) or {}
        out("woken_state", st_old.get("group", {}).get("state"))
        out("woken_last_reason", woken.get("group", {}).get("last_reason"))
        out("woken_stalls", woken.get("vrrp", {}).get("stalls"))

    if vmac:
        virtual_mac_checks(lab, checks, kind, master, backup, mac_before)

    # -- assertions --
    checks.check(master_after == backup, f"{backup} is the only Master after the {kind}",
                 f"master_after={master_after}")
    if kind == "carrier":
        fg = faulted.get("group", {})
        out("faulted_state", fg.get("state"))
        out("faulted_last_reason", fg.get("last_reason"))
        checks.check(fg.get("state") == "Fault" and fg.get("last_reason") == "link_down",
                     f"{master} went to Fault on carrier loss",
                     f"state {fg.get('state')}, reason {fg.get('last_reason')}")
        checks.check(lab.state(master) == "Backup",
                     f"{master} is Backup once its link has carrier again (no preemption)",
                     f"{lab.state(master)}")
    if kind == "freeze":
        checks.check(woken.get("group", {}).get("last_reason") == "stalled",
                     f"{master}, woken, stepped down because it had stalled",
                     f"state {woken.get('group', {}).get('state')}, reason "
                     f"{woken.get('group', {}).get('last_reason')}")
        checks.check(lab.state(master) == "Backup", f"{master} stays Backup (no second takeover)",
                     f"{lab.state(master)}")
        longest = probes["longest_gap_ms"]
        checks.check(longest < GAP_LIMIT_MS, "no probe gap over the limit in the whole run "
                     "(no second outage when the frozen node woke)", f"{longest:.0f} ms")
    if kind == "kill":
        rs = (restarted.get("group") or {}).get("state")
        out("restarted_state", rs)
        vip_left = netlab.LAN_VIP in lab.ip(master, "-4", "-o", "addr", "show", "dev",
                                            lab.ifname[(master, "lan")]).stdout
        out("restarted_node_holds_lan_vip", vip_left)
        checks.check(rs == "Backup", f"the restarted fwhad on {master} is Backup", f"{rs}")
        checks.check(not vip_left, f"the restarted fwhad removed the VIPs the killed one left "
                     f"on {master}", f"LAN VIP present: {vip_left}")
    if kind in ("crash", "freeze", "kill"):
        checks.check(any("replicated state applied" in line for line in settle_lines),
                     f"{backup} applied the replicated state before adding the VIPs "
                     "(takeover transaction)", " | ".join(settle_lines) or "no takeover line")
    if kind == "next_hop":
        next_hop_checks(lab, checks, master, backup)
    if kind in ("graceful", "switchover", "carrier", "next_hop"):
        checks.check(new_reason == "handover_received",
                     f"{backup} took over by handover (sync link), not by timers",
                     f"reason {new_reason}")
    if kind == "switchover":
        checks.check(switch_reply[0] == 0 and "is Master" in switch_reply[1],
                     "fwhactl switchover succeeded", f"exit {switch_reply[0]}: {switch_reply[1]}")
        checks.check((old.get("group") or {}).get("state") == "Backup" and
                     (old.get("group") or {}).get("last_reason") == "handed_over",
                     f"{master} is Backup after handing over",
                     f"{(old.get('group') or {}).get('state')}, "
                     f"{(old.get('group') or {}).get('last_reason')}")
        checks.check(gap_ms is not None and gap_ms < SWITCHOVER_GAP_LIMIT_MS,
                     f"switchover gap < {SWITCHOVER_GAP_LIMIT_MS:.0f} ms", f"{gap_ms} ms")
    if kind in ("crash", "kill", "graceful", "freeze", "carrier", "switchover", "next_hop"):
        checks.check(t >= args.sessions, f"at least {args.sessions} sessions before failover",
                     f"T={t}")
        checks.check(k == t, "every pre-existing session survived", f"{k}/{t}")
        checks.check(gap_ms is not None and gap_ms < GAP_LIMIT_MS and win.get("resumed"),
                     f"failover gap < {GAP_LIMIT_MS:.0f} ms", f"{gap_ms} ms")
        if kind == "graceful":
            checks.check(exit_code == 0, "old Master's fwhad exited 0 after SIGTERM",
                         f"exit={exit_code}")
    else:
        checks.check(t >= args.sessions, f"at least {args.sessions} sessions before failover",
                     f"T={t}")
        checks.check(t - k > 0, "without conntrack sync, sessions are lost (the test can fail)",
                     f"lost {t - k}/{t}")
        checks.check(bool(win.get("resumed")), "probes resumed through the new Master",
                     f"gap {gap_ms} ms")


# --- sync_cut --------------------------------------------------------------------------------

# A cut link is noticed by TCP after its 10 s user timeout (sync_link.cpp), the alert follows
# 3 s later (the hold-off for reconnects): 16 s leaves margin.
SYNC_CUT_S = 16.0


def sync_cut_run(lab, args, checks):
    """The sync link goes down while both nodes run: no role may change, both must raise the
    split-brain alert, and both must say so when it is back."""
    master, backup = start_pair(lab)
    out("master_before", master)
    roles = {master: "Master", backup: "Backup"}
    sync_if = lab.ifname[(master, "sync")]
    lab.ip(master, "link", "set", sync_if, "down")
    lab.log(f"sync_cut: {master}'s sync link down for {SYNC_CUT_S:.0f} s")
    time.sleep(SYNC_CUT_S)
    during = lab.states()
    out("roles_during_cut", json.dumps(during, sort_keys=True))
    alerted = {master: "no standby holds our state" in lab.log_tail(master, 400),
               backup: "split brain risk" in lab.log_tail(backup, 400)}
    out("split_brain_alerts", json.dumps(alerted, sort_keys=True))
    lab.ip(master, "link", "set", sync_if, "up")
    lab.log("sync_cut: sync link up again")
    if not sync_reconnected(lab, 20, interval=0.1):
        lab.log("sync_cut: the sync link did not come back within 20 s")
    time.sleep(1.5)  # the watch runs once a second
    back = {fw: "back: replication resumes" in lab.log_tail(fw, 400) for fw in FWS}
    out("sync_back_notices", json.dumps(back, sort_keys=True))
    after = lab.states()
    out("roles_after", json.dumps(after, sort_keys=True))
    checks.check(during == roles, "no role change while the sync link is cut (adverts arrive)",
                 json.dumps(during, sort_keys=True))
    checks.check(all(alerted.values()), "both nodes raised an alert (Master: no standby; Backup: "
                 "split brain risk)",
                 json.dumps(alerted, sort_keys=True))
    checks.check(all(back.values()), "both nodes said the sync link is back",
                 json.dumps(back, sort_keys=True))
    checks.check(after == roles, "no role change after the link came back",
                 json.dumps(after, sort_keys=True))


# --- late_adverts ----------------------------------------------------------------------------

# RFC 5798 times of the Backup (fw2) at the lab's advert interval: its Master_Down_Interval,
# and where the alive graces end (one more interval each, three at most: vrrp_group.cpp).
LATE_INTERVAL_S = netlab.ADVERT_INTERVAL_CS / 100
LATE_MDI_S = 3 * LATE_INTERVAL_S + (256 - netlab.PRIORITY["fw2"]) / 256 * LATE_INTERVAL_S
LATE_GRACES_END_S = LATE_MDI_S + 3 * LATE_INTERVAL_S
# The adverts come back this long after the last one fw2 heard: past the Master_Down_Interval
# (a grace is needed), and an interval plus margin before the graces end (the first advert
# after the mute is up to an interval later).
LATE_UNMUTE_S = LATE_MDI_S + LATE_INTERVAL_S / 2
assert LATE_UNMUTE_S + 1.5 * LATE_INTERVAL_S < LATE_GRACES_END_S
LATE_LOAD_RATE = 10000    # ct_load entries/s on fw1 while muted the second time
LATE_LOAD_S = 6.0         # outlasts the mute and the status reads around it, on a slow VM too
LATE_K0 = 12_000_000      # ct_load entry numbers: away from full_table's and the bench's


def drop_vrrp(lab, node, hook, on):
    """Drops (on) or lets through again (off) every VRRP packet `node` sends (hook "output":
    its adverts are late for the peer) or receives ("input": it hears no Master), while the
    sync link carries on."""
    table = f"fwha_lab_vrrp_{hook}"
    if on:
        path = lab.path(f"{table}-{node}.nft")
        with open(path, "w") as fh:
            fh.write(f"table ip {table} {{\n  chain {hook} {{\n    type filter hook {hook} "
                     "priority -300; policy accept;\n    ip protocol 112 drop\n  }\n}\n")
        lab.nsexec(node, ["nft", "-f", path])
    else:
        lab.nsexec(node, ["nft", "delete", "table", "ip", table])


def late_adverts_once(lab, checks, label, master, backup):
    before = {fw: lab.status(fw) for fw in FWS}
    t0 = time.monotonic()
    drop_vrrp(lab, master, "output", True)
    try:
        # Timed from the last advert the Backup heard (its age when asked, with the mute on),
        # not from the mute: the adverts' phase would otherwise move the window by an interval.
        st = lab.status(backup) or {}
        age_s = (st.get("peer") or {}).get("last_advert_age_ms", 0) / 1000
        out(f"{label}_last_advert_age_ms_at_mute", round(age_s * 1000))
        time.sleep(max(0.0, LATE_UNMUTE_S - age_s))
    finally:
        drop_vrrp(lab, master, "output", False)
    muted_s = time.monotonic() - t0
    time.sleep(0.5)   # a few adverts again; the status snapshots are published every 100 ms
    after = {fw: lab.status(fw) for fw in FWS}
    if not all(after.values()):
        raise LabError(f"a node does not answer status after the {label} mute")
    graces = (counter(before[backup], "vrrp", "alive_graces"),
              counter(after[backup], "vrrp", "alive_graces"))
    beats = (counter(before[master], "sync", "heartbeats_sent"),
             counter(after[master], "sync", "heartbeats_sent"))
    elapsed = muted_s + 0.5
    rate = (beats[1] - beats[0]) / elapsed
    out(f"{label}_mute_s", f"{muted_s:.3f}")
    out(f"{label}_{backup}_alive_graces", f"{graces[0]} -> {graces[1]}")
    out(f"{label}_{master}_heartbeats_per_s", f"{rate:.0f}")
    states = {fw: (after[fw]["group"]["state"], after[fw]["group"].get("transitions"))
              for fw in FWS}
    states_before = {fw: (before[fw]["group"]["state"], before[fw]["group"].get("transitions"))
                     for fw in FWS}
    out(f"{label}_roles_after", json.dumps(states, sort_keys=True))
    checks.check(states == states_before, f"{label}: no role change while {master}'s adverts "
                 "were dropped (it still spoke on the sync link)",
                 f"{states_before} -> {states}")
    checks.check(graces[1] > graces[0], f"{label}: {backup} waited for late adverts because "
                 f"{master} spoke on the sync link (vrrp.alive_graces)",
                 f"{graces[0]} -> {graces[1]}")
    return rate


def late_adverts_run(lab, args, checks):
    master, backup = start_pair(lab)
    out("master_before", master)
    if args.advert_cs != netlab.ADVERT_INTERVAL_CS:
        raise LabError("late_adverts is timed for the lab's advert interval "
                       f"({netlab.ADVERT_INTERVAL_CS} cs)")
    idle_rate = late_adverts_once(lab, checks, "idle", master, backup)
    checks.check(idle_rate >= 100, f"idle: {master} sends heartbeats (5 ms apart: ~200/s)",
                 f"{idle_rate:.0f}/s")
    count = int(LATE_LOAD_RATE * LATE_LOAD_S)
    gen = lab.spawn(master, [lab.ct_load(), "gen", "--k0", str(LATE_K0), "--count", str(count),
                             "--rate", str(LATE_LOAD_RATE), "--max-seconds", "30"],
                    "ct-load-late")
    try:
        time.sleep(0.8)   # the load is on, the event pump busy
        if gen.popen.poll() is not None:
            raise LabError(f"ct_load exited early ({gen.popen.returncode}): see {gen.log_path}")
        load_rate = late_adverts_once(lab, checks, "load", master, backup)
    finally:
        try:
            gen.popen.wait(timeout=30)
        except Exception:  # noqa: BLE001
            gen.signal(signal.SIGKILL)
            raise LabError("ct_load did not end") from None
    out("ct_load_exit", gen.popen.returncode)
    # Idle again: the heartbeat timer must be back (the pump's rounds carried it meanwhile).
    b0 = counter(lab.status(master), "sync", "heartbeats_sent")
    time.sleep(1.0)
    after_rate = counter(lab.status(master), "sync", "heartbeats_sent") - b0
    out(f"after_load_{master}_heartbeats_per_s", after_rate)
    checks.check(after_rate >= 100, f"after the load {master} sends heartbeats again (~200/s)",
                 f"{after_rate}/s")
    checks.check(gen.popen.returncode == 0, "ct_load created its entries on the Master")
    try:   # the status is a snapshot published every 100 ms
        wait_for(lambda: counter(lab.status(master), "sync", "entries_sent") >= count, 5,
                 interval=0.1, what="the load's entries sent")
    except LabTimeout:
        pass
    entries = counter(lab.status(master), "sync", "entries_sent")
    out(f"{master}_entries_sent", entries)
    checks.check(entries >= count, f"{master} replicated the load ({count} entries)",
                 str(entries))
    checks.check(load_rate <= idle_rate / 4, f"load: {master}'s flow frames stood in for most "
                 "heartbeats", f"{load_rate:.0f}/s under load, {idle_rate:.0f}/s idle")
    masters = lab.who_is_master()
    out("master_after", ",".join(masters) or "none")
    checks.check(masters == [master], "the original Master is still the only Master",
                 f"{masters}")


# --- bad_input -------------------------------------------------------------------------------

def counter(st, section, key):
    return int(((st or {}).get(section) or {}).get(key, 0))


def roles_and_transitions(lab):
    res = {}
    for fw in FWS:
        st = lab.status(fw)
        if st is None:
            raise LabError(f"{fw} does not answer status")
        res[fw] = (st["group"]["state"], st["group"].get("transitions"))
    return res


def check_config_cases(lab, checks):
    fwhad = lab.fwhad
    good = lab.config_path("fw1")

    def run_check(path):
        return lab.nsexec("fw1", [fwhad, "-c", path, "--check-config"], check=False,
                          timeout=15)

    cp = run_check(good)
    checks.check(cp.returncode == 0, "--check-config accepts the lab's own config",
                 f"exit {cp.returncode} {cp.stderr.strip()[:200]}")
    text = lab.config_text("fw1")
    cases = [("misspelt key", "priority = 150", "prority = 150", "prority"),
             ("out-of-range value", "vrid = 51", "vrid = 300", "vrid")]
    for label, old, new, key in cases:
        assert old in text
        bad = text.replace(old, new, 1)
        line_no = bad.splitlines().index(new) + 1
        path = lab.write_config("fw1", path=lab.path(f"bad-{key}.toml"), text=bad)
        cp = run_check(path)
        err = (cp.stderr or "") + (cp.stdout or "")
        out(f"check_config_{key}_exit", cp.returncode)
        out(f"check_config_{key}_stderr", err.strip().replace("\n", " | ")[:300])
        checks.check(cp.returncode == 2, f"--check-config exits 2 on a {label} (`{new}`)",
                     f"exit {cp.returncode}")
        checks.check(key in err, f"the error names the key `{key}`")
        names_line = re.search(rf"(?::|\bline\s*)({line_no})(?!\d)", err) is not None
        checks.check(names_line, f"the error names line {line_no}")


def inject_vrrp(lab, node, extra):
    cp = lab.nsexec(node, [PY, INJECT, "vrrp", *extra], timeout=15)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def vrrp_cases(lab, checks):
    f = lab.ifname
    before = {fw: lab.status(fw) for fw in FWS}
    roles0 = roles_and_transitions(lab)
    # (b) a stranger on the LAN claims the VRID with priority 255
    info = inject_vrrp(lab, "client", ["--src", netlab.CLIENT_IP, "--vrid", str(netlab.VRID),
                                       "--priority", "255", "--ttl", "255",
                                       "--addr", netlab.LAN_VIP, "--count", "3"])
    lab.log(f"sent 3 VRRP adverts from the stranger 192.0.2.10 (prio 255, TTL 255): {info}")

    def rejected_source_up():
        now = {fw: lab.status(fw) for fw in FWS}
        return all(counter(now[fw], "vrrp", "rejected_source")
                   > counter(before[fw], "vrrp", "rejected_source") for fw in FWS) and now
    try:
        after = wait_for(rejected_source_up, 5, interval=0.1, what="rejected_source to rise")
    except LabTimeout:
        after = {fw: lab.status(fw) for fw in FWS}
    for fw in FWS:
        b, a = (counter(before[fw], "vrrp", "rejected_source"),
                counter(after[fw], "vrrp", "rejected_source"))
        out(f"{fw}_rejected_source", f"{b} -> {a}")
        checks.check(a > b, f"{fw} ({roles0[fw][0]}) counts the stranger's advert in "
                     "vrrp.rejected_source", f"{b} -> {a}")
    time.sleep(1.5)   # several Master_Down_Intervals (3 x 100 ms + skew)
    roles1 = roles_and_transitions(lab)
    checks.check(roles1 == roles0, "stranger's advert changed no role (state, transitions)",
                 f"{roles0} -> {roles1}")

    # (c) TTL 64 "from the peer": fw1's LAN address, sent from fw1's namespace, prio 0 (if
    # it were accepted, fw2 would take over within Skew_Time and count a transition).
    before = {fw: lab.status(fw) for fw in FWS}
    info = inject_vrrp(lab, "fw1", ["--src", netlab.ADDR["fw1"]["lan"], "--hdrincl",
                                    "--ttl", "64", "--ifname", f[("fw1", "lan")],
                                    "--vrid", str(netlab.VRID), "--priority", "0",
                                    "--addr", netlab.LAN_VIP, "--count", "3"])
    lab.log(f"sent 3 VRRP adverts with TTL 64 from fw1's address 192.0.2.2 (prio 0): {info}")
    try:
        after_fw2 = wait_for(lambda: (lambda s: s if counter(s, "vrrp", "rejected_ttl") >
                                      counter(before["fw2"], "vrrp", "rejected_ttl") else None)(
                                          lab.status("fw2")), 5, interval=0.1,
                             what="fw2 rejected_ttl to rise")
    except LabTimeout:
        after_fw2 = lab.status("fw2")
    b, a = (counter(before["fw2"], "vrrp", "rejected_ttl"),
            counter(after_fw2, "vrrp", "rejected_ttl"))
    out("fw2_rejected_ttl", f"{b} -> {a}")
    checks.check(a > b, "fw2 counts the TTL-64 advert from its peer's address in "
                 "vrrp.rejected_ttl", f"{b} -> {a}")
    time.sleep(1.5)
    roles2 = roles_and_transitions(lab)
    checks.check(roles2 == roles0, "TTL-64 advert changed no role (state, transitions)",
                 f"{roles0} -> {roles2}")

    # (d) a rogue on the LAN (the client's namespace) speaks for fw2: fw2's LAN address as the
    # source, TTL 255, priority 255, for 1 s. Source and TTL pass; only the priority fw2 told
    # fw1 on the sync link (100) unmasks it. Accepted, it would depose fw1 and move the VIPs.
    before = lab.status("fw1")
    info = inject_vrrp(lab, "client", ["--src", netlab.ADDR["fw2"]["lan"], "--hdrincl",
                                       "--ttl", "255", "--ifname", f[("client", "lan")],
                                       "--vrid", str(netlab.VRID), "--priority", "255",
                                       "--addr", netlab.LAN_VIP, "--count", "10",
                                       "--interval-s", "0.1"])
    lab.log(f"rogue on the LAN: 10 adverts as fw2 ({netlab.ADDR['fw2']['lan']}), priority 255, "
            f"TTL 255: {info}")
    time.sleep(1.0)
    after = lab.status("fw1")
    b, a = (counter(before, "vrrp", "rejected_priority"),
            counter(after, "vrrp", "rejected_priority"))
    out("fw1_rejected_priority", f"{b} -> {a}")
    checks.check(a > b, "fw1 refuses the rogue's adverts in the peer's name "
                 "(vrrp.rejected_priority)", f"{b} -> {a}")
    roles3 = roles_and_transitions(lab)
    checks.check(roles3 == roles0, "the rogue's priority-255 adverts changed no role",
                 f"{roles0} -> {roles3}")
    vip_on = [fw for fw in FWS if netlab.LAN_VIP in lab.ip(
        fw, "-4", "-o", "addr", "show", "dev", f[(fw, "lan")]).stdout]
    out("lan_vip_on", ",".join(vip_on) or "none")
    checks.check(vip_on == ["fw1"], "the LAN VIP stayed on fw1", ",".join(vip_on) or "none")


def log_since(lab, node, offset):
    """What node's fwhad logged after byte `offset` of its log (os.path.getsize before)."""
    with open(lab.log_path(node), errors="replace") as fh:
        fh.seek(offset)
        return fh.read()


def sync_reconnected(lab, bound_s, interval=0.2):
    """True once both nodes report the sync link connected (within bound_s)."""
    try:
        wait_for(lambda: all((lab.status(fw) or {}).get("sync", {}).get("connected") is True
                             for fw in FWS), bound_s, interval=interval, what="sync reconnected")
        return True
    except LabTimeout:
        return False


def inject_sync(lab, kind, sender, target, timeout_s=3.0):
    """inject.py sync-garbage of `kind` from sender's sync address to target's sync port;
    its JSON report ({} when it printed none)."""
    cp = lab.nsexec(sender, [PY, INJECT, "sync-garbage", "--src", netlab.ADDR[sender]["sync"],
                             "--dst", netlab.ADDR[target]["sync"], "--port",
                             str(netlab.SYNC_PORT), "--kind", kind, "--node", sender,
                             "--timeout", str(timeout_s)],
                    check=False, timeout=timeout_s + 20)
    return json.loads(cp.stdout.strip().splitlines()[-1]) if cp.stdout.strip() else {}


def sync_cases(lab, checks):
    peer_of = {"fw1": "fw2", "fw2": "fw1"}
    target, sender = "fw2", "fw1"
    results = []
    before_all = {fw: lab.status(fw) for fw in FWS}
    if any(st is None for st in before_all.values()):
        raise LabError("a node does not answer status before the sync garbage test")
    # Each connects from the peer's sync address, so fwhad takes it for the peer reconnecting
    # (it replaces the real connection, and the real peer dials again within 50 ms):
    # bad-length (a 4 GiB frame: the stream cannot be trusted, closed), junk-protobuf (a
    # frame whose body does not parse: skipped), truncated (the stream ends inside a frame),
    # out-of-order (a valid Hello in the peer's name, FlowBatch seq 5 of a new session, then
    # seq 7: a gap, closed; the sink then holds that session's numbering, so the real
    # peer's reconnect cannot resume and must resync).
    for kind in ("bad-length", "junk-protobuf", "truncated", "out-of-order"):
        if kind == "out-of-order" and before_all[target]["group"]["state"] != "Backup":
            # A Master ignores flows from its peer (both would be Master): the gap needs the
            # sink, fw2, whether or not it accepted the earlier kinds.
            raise LabError(f"out-of-order needs the Backup as target, not {target}")
        log_size = os.path.getsize(lab.log_path(target))
        before = lab.status(target)
        if kind == "out-of-order":
            before_resync = {fw: lab.status(fw) for fw in FWS}
        res = inject_sync(lab, kind, sender, target)
        if not res.get("connected") and target == "fw2" and kind == "bad-length":
            # fw2 may be the side that connects; then fw1 is the listener to attack.
            lab.log(f"fw2 does not accept on {netlab.SYNC_PORT} ({res.get('error')}); "
                    "attacking fw1's listener from fw2 instead")
            target, sender = "fw1", "fw2"
            log_size = os.path.getsize(lab.log_path(target))
            before = lab.status(target)
            res = inject_sync(lab, kind, sender, target)
        lab.log(f"sync garbage ({kind}) {peer_of[target]} -> {target}: {res}")
        checks.check(bool(res.get("connected")), f"garbage connection ({kind}) reached "
                     f"{target}:{netlab.SYNC_PORT}", res.get("error") or "")

        def rejected_up():
            s = lab.status(target)
            return s if counter(s, "sync", "frames_rejected") > \
                counter(before, "sync", "frames_rejected") else None
        try:
            after = wait_for(rejected_up, 5, interval=0.1, what="frames_rejected to rise")
        except LabTimeout:
            after = lab.status(target)
        b, a = counter(before, "sync", "frames_rejected"), counter(after, "sync",
                                                                    "frames_rejected")
        out(f"{target}_frames_rejected_{kind}", f"{b} -> {a}")
        checks.check(a > b, f"{target} counts the {kind} frame in sync.frames_rejected",
                     f"{b} -> {a}")
        if kind in ("bad-length", "out-of-order"):
            # (junk-protobuf's frame is skipped and its connection kept until the real peer's
            # replaces it; truncated's ends by itself.)
            checks.check(res.get("peer_closed") in ("eof", "reset"),
                         f"{target} closes the connection that sent the {kind} frame",
                         f"peer_closed={res.get('peer_closed')}")
        if kind == "out-of-order":
            b, a = counter(before, "sync", "sequence_gaps"), counter(after, "sync",
                                                                      "sequence_gaps")
            out(f"{target}_sequence_gaps", f"{b} -> {a}")
            checks.check(a > b, f"{target} counts the gap in sync.sequence_gaps", f"{b} -> {a}")
        new_lines = log_since(lab, target, log_size)
        logged = re.search(r"reject|malformed|invalid|too large|oversize|bad frame|parse|"
                           r"frames missing|ended inside", new_lines, re.I)
        checks.check(logged is not None, f"{target} logs the rejection",
                     logged.group(0) if logged else "no matching log line")
        results.append(res)
    checks.check(lab.fwhad_running(target) and lab.status(target) is not None,
                 f"{target}'s fwhad still runs and answers status")
    checks.check(sync_reconnected(lab, 20),
                 "sync connection is up again on both nodes (within 20 s)")
    # The out-of-order case left the sink with another session's numbering: the real
    # peer's reconnect cannot resume, so the Master resyncs, and the sink completes a round.
    master_fw = next((fw for fw in FWS if before_all[fw]["group"]["state"] == "Master"), "fw1")
    sink_fw = peer_of[master_fw]

    def resynced():
        m, s = lab.status(master_fw) or {}, lab.status(sink_fw) or {}
        done = (counter(m, "sync", "resyncs") > counter(before_resync[master_fw], "sync",
                                                         "resyncs")
                and counter(s, "sync", "rounds_completed") > counter(before_resync[sink_fw],
                                                                     "sync", "rounds_completed")
                and s.get("sync", {}).get("holds_peer_state"))
        return (m, s) if done else None
    try:
        m_after, s_after = wait_for(resynced, 20, interval=0.2, what="a resync after the garbage")
        ok = True
    except LabTimeout:
        m_after, s_after = lab.status(master_fw) or {}, lab.status(sink_fw) or {}
        ok = False
    out("resync_after_garbage", json.dumps({
        f"{master_fw}_resyncs": f"{counter(before_resync[master_fw], 'sync', 'resyncs')} -> "
                                f"{counter(m_after, 'sync', 'resyncs')}",
        f"{master_fw}_last_resync_cause": m_after.get("sync", {}).get("last_resync_cause"),
        f"{sink_fw}_rounds_completed":
            f"{counter(before_resync[sink_fw], 'sync', 'rounds_completed')} -> "
            f"{counter(s_after, 'sync', 'rounds_completed')}"}, sort_keys=True))
    checks.check(ok, f"after the garbage {master_fw} resyncs {sink_fw}, which completes the "
                 "round and holds the state again (within 20 s)")
    after_all = {fw: lab.status(fw) or {} for fw in FWS}
    for fw in FWS:
        out(f"{fw}_sync_connects", f"{counter(before_all[fw], 'sync', 'connects')} -> "
            f"{counter(after_all[fw], 'sync', 'connects')}")
    roles_after = {fw: after_all[fw].get("group", {}).get("state") for fw in FWS}
    roles_before = {fw: before_all[fw]["group"]["state"] for fw in FWS}
    checks.check(roles_after == roles_before, "sync garbage changed no role",
                 f"{roles_before} -> {roles_after}")


def silent_peer_case(lab, checks):
    """Connections from the peer's sync address that go silent, as a stuck peer's would:
    `stalled` stops inside its first frame; `silent-after-hello` introduces itself as fw2,
    promising a frame every second, and says nothing more. They are made to fw1, the node
    that dials: fw1 takes each for fw2 reconnecting and drops the real connection, and fw2
    waits to be dialled again. Nothing but fwhad's silence limit (10 s, sync/peer_silence.h)
    ends them: without one, replication stays down for as long as they stay open."""
    target, sender = "fw1", "fw2"
    expected_log = {"stalled": "no Hello from the peer within 10 s",
                    "silent-after-hello": "nothing from the peer for 10 s"}
    for kind, why in expected_log.items():
        before = lab.status(target)
        if before is None:
            raise LabError(f"{target} does not answer status before the {kind} case")
        log_size = os.path.getsize(lab.log_path(target))
        res = inject_sync(lab, kind, sender, target, timeout_s=20)
        lab.log(f"{kind} connection {sender} -> {target}: {res}")
        out(f"{kind}_closed_after_s", res.get("closed_after_s"))
        checks.check(bool(res.get("connected")), f"the {kind} connection reached {target}",
                     res.get("error") or "")
        after = lab.status(target) or {}
        checks.check(res.get("peer_closed") in ("eof", "reset"),
                     f"{target} closes the {kind} connection",
                     f"peer_closed={res.get('peer_closed')}")
        closed_after = res.get("closed_after_s")
        checks.check(closed_after is not None and 9.5 <= closed_after <= 13.0,
                     f"{target} closes the {kind} connection at its silence limit (10 s), "
                     "not before or much later", f"after {closed_after} s")
        b, a = counter(before, "sync", "peer_silences"), counter(after, "sync", "peer_silences")
        out(f"{target}_peer_silences_{kind}", f"{b} -> {a}")
        checks.check(a == b + 1, f"{target} counts the {kind} connection in "
                     "sync.peer_silences", f"{b} -> {a}")
        # The error once a minute at most, the link's notice every time: both name it.
        logged = re.search(r"(closing the sync link to \S+|sync link down .* reason=peer "
                           r"silent): " + re.escape(why), log_since(lab, target, log_size))
        checks.check(logged is not None, f"{target} logs why it closed the {kind} connection",
                     logged.group(0) if logged else "no matching log line")
        checks.check(sync_reconnected(lab, 10), "the real peers are connected again after "
                     f"the {kind} connection (within 10 s of the close)")


def bad_input_run(lab, args, checks):
    lab.require_binaries()
    check_config_cases(lab, checks)
    master, backup = start_pair(lab)
    out("master_before", master)
    vrrp_cases(lab, checks)
    sync_cases(lab, checks)
    silent_peer_case(lab, checks)
    masters = lab.who_is_master()
    out("master_after", ",".join(masters) or "none")
    checks.check(masters == [master], "the original Master is still the only Master",
                 f"{masters}")


# --- main ------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario",
                    choices=["crash", "control", "kill", "graceful", "switchover", "freeze",
                             "carrier", "next_hop", "sync_cut", "late_adverts", "bad_input"])
    ap.add_argument("--assert", dest="do_assert", action="store_true",
                    help="exit non-zero when an expectation fails")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--ipv6", action="store_true",
                    help="dual-stack lab, IPv6 sessions and probes (client fd00:1::10 to "
                    "server fd00:2::10 through the IPv6 VIPs)")
    ap.add_argument("--virtual-mac", action="store_true",
                    help="group.virtual_mac on both nodes: the client's neighbour entry for the "
                    "LAN VIP must be the virtual MAC before and after the failover")
    ap.add_argument("--advert-cs", type=int, default=netlab.ADVERT_INTERVAL_CS,
                    help="advert interval of both nodes (fwhad's default is 1)")
    ap.add_argument("--watch-neigh", action="store_true",
                    help="record `ip -ts monitor neigh` in client, server, fw1 and fw2 to "
                    "neigh-<node>.log, and neighbour discovery on the WAN of server and fw2 "
                    "(tcpdump) to nd-<node>.log, in the run directory (kept when a check "
                    "fails)")
    ap.add_argument("--verbose", action="store_true", help="print a timeline")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--max-seconds", type=int, default=240, help="wall-clock cap")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("skip: the lab needs root (network namespaces)")
        return 77
    netlab.install_signal_handlers()
    def on_alarm(_signum, _frame):
        raise LabInterrupted(f"wall-clock cap of {args.max_seconds} s reached")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.max_seconds)

    def timeline(msg):
        if args.verbose:
            print(msg, flush=True)

    checks = Checks()
    out("scenario", args.scenario)
    out("python", f"{sys.executable} {sys.version.split()[0]}")
    lab_error = None
    group = {"advert_interval_cs": args.advert_cs}
    if args.virtual_mac:
        group["virtual_mac"] = True
    if args.scenario == "next_hop":
        group.update(track_next_hops=[netlab.SERVER_IP], track_interval_ms=NEXT_HOP_INTERVAL_MS,
                     track_misses=NEXT_HOP_MISSES)
    lab = netlab.Lab(conntrack=(args.scenario != "control"), verbose=args.verbose,
                     group_options={fw: dict(group) for fw in FWS},
                     ipv6=args.ipv6,
                     keep=args.keep, log=timeline)
    try:
        with lab:
            out("run", f"{lab.prefix} {lab.run_dir}")
            if args.watch_neigh:
                for node in ("client", "server", *FWS):
                    lab.spawn(node, ["ip", "-ts", "monitor", "neigh"], f"neigh-{node}")
                for node, link in (("server", "wan"), ("fw2", "wan")):
                    lab.spawn(node, ["tcpdump", "-n", "-l", "-tt", "-e", "-i",
                                     lab.ifname[(node, link)], "icmp6 and ip6[40] >= 133"],
                              f"nd-{node}")
            try:
                if args.scenario == "bad_input":
                    bad_input_run(lab, args, checks)
                elif args.scenario == "sync_cut":
                    sync_cut_run(lab, args, checks)
                elif args.scenario == "late_adverts":
                    late_adverts_run(lab, args, checks)
                else:
                    failover_run(lab, args, checks, args.scenario)
            except (LabError, LabInterrupted) as e:
                lab_error = f"{type(e).__name__}: {e}"
                out("lab_error", lab_error)
            except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
                # Usually fwhactl's JSON not matching the contract; show where.
                traceback.print_exc(file=sys.stdout)
                lab_error = f"{type(e).__name__}: {e}"
                out("lab_error", lab_error)
            failed = bool(lab_error) or (args.do_assert and checks.failed)
            if failed:
                lab.failed = True
                for fw in FWS:
                    print(f"--- tail of {fw}'s fwhad log ({lab.log_path(fw)}) ---")
                    print(lab.log_tail(fw), end="", flush=True)
    except LabInterrupted as e:   # interrupted during setup or teardown
        lab_error = lab_error or str(e)
        out("lab_error", lab_error)
    except LabError as e:
        lab_error = lab_error or str(e)
        out("lab_error", lab_error)
    finally:
        signal.alarm(0)

    if lab_error:
        out("result", f"ERROR ({lab_error})")
        print_summary()
        return 2
    if checks.failed:
        out("result", "FAIL: " + "; ".join(checks.failed))
        print_summary()
        return 1 if args.do_assert else 0
    out("result", "PASS")
    print_summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
