#!/usr/bin/env python3
"""Interop lab test: fwhad on fw1, Debian's keepalived on fw2 (VRRPv3, the same VRID, advert
interval and VIPs; keepalived.py), in the namespace lab (netlab.py). No traffic and no
conntrack replication (keepalived has no sync link): only the election and the VIPs.

    interop.py [--assert] [--verbose] [--keep] [--max-seconds S]

Phases, each asserted (RFC 5798 state names; keepalived's are read from its log):
1 fwhad Master   fwhad (priority 150) becomes Master, then keepalived (100) starts: both its
                 instances stay BACKUP for 1.5 s (> 4 Master_Down_Intervals), the VIPs stay
                 on fw1 only. SIGTERM to fwhad: it cannot hand over on the sync link (no
                 peer there), so it leaves with a priority-0 advert; keepalived becomes
                 MASTER (after Skew_Time, 61 ms, not its Master_Down_Interval, 361 ms) and
                 holds both VIPs (its log says it received the priority-0 advert on both
                 instances); fwhad exits 0 and has removed them.
2 fwhad Backup   fwhad restarts with priority 50 while keepalived is Master: Backup for 1.5 s,
                 counting keepalived's adverts (adverts_received rises, no rejected_* and no
                 other_vrid), no VIP on fw1.
3 crash          keepalived is frozen and killed (SIGSTOP, SIGKILL: no goodbye): fwhad
                 becomes Master within its Master_Down_Interval (3 x 100 ms + Skew_Time
                 80 ms at priority 50 = 380 ms) after keepalived's last advert, and holds the
                 VIPs (the killed keepalived leaves its VIPs on fw2 too).
4 preempted      keepalived (100) starts again (it removes the VIPs its crash left) and
                 preempts fwhad (50): keepalived MASTER with the VIPs, fwhad Backup (reason
                 higher_priority_master) without them.
5 keepalived stop SIGTERM to keepalived: it exits 0 after priority-0 adverts; fwhad becomes
                 Master after its Skew_Time (before a Master_Down_Interval) with the VIPs.
Throughout: keepalived logs no complaint about fwhad's adverts (checksum, TTL, version,
address count or list, interval), and fwhad rejects none of keepalived's.

Output is `key: value` lines; every assertion prints a `check:` line. Exit status: 0 = pass
(or no --assert), 1 = an assertion failed, 2 = the lab itself failed, 77 = skipped (not root,
or keepalived not installed). Wall-clock cap --max-seconds (default 120 s); teardown
(processes by PID, then namespaces) runs on every exit path (netlab.py).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keepalived  # noqa: E402
import labrun  # noqa: E402
import netlab  # noqa: E402
from netlab import LabError, LabTimeout, mono_ns, wait_for  # noqa: E402
from scenario import out  # noqa: E402

FWHAD_NODE, KEEPALIVED_NODE = "fw1", "fw2"
FWHAD_HIGH, FWHAD_LOW = 150, 50        # phase 1 / phases 2-5
KEEPALIVED_PRIORITY = 100
INTERVAL_MS = netlab.ADVERT_INTERVAL_CS * 10
STEADY_S = 1.5                          # > 4 Master_Down_Intervals: long enough to flap
SLACK_MS = 150                          # scheduling on a shared 2-core machine


def skew_ms(priority):
    """RFC 5798 6.1 Skew_Time at the lab's advert interval."""
    return (256 - priority) * INTERVAL_MS / 256


def master_down_ms(priority):
    return 3 * INTERVAL_MS + skew_ms(priority)


# --- what each side holds ----------------------------------------------------------------------

def vips_on(lab, node):
    """The lab's VIPs present on node's LAN and WAN interfaces (`ip addr`)."""
    found = []
    for side, vip in (("lan", netlab.LAN_VIP), ("wan", netlab.WAN_VIP)):
        cp = lab.ip(node, "-4", "-o", "addr", "show", "dev", lab.ifname[(node, side)])
        if re.search(rf"\binet {re.escape(vip)}/", cp.stdout):
            found.append(vip)
    return found


ALL_VIPS = [netlab.LAN_VIP, netlab.WAN_VIP]
REJECTION_KEYS = ("rejected_ttl", "rejected_source", "rejected_malformed", "other_vrid")


def fwhad_status(lab):
    st = lab.status(FWHAD_NODE)
    if st is None:
        p = lab.fwhad_procs.get(FWHAD_NODE)
        if p is not None and not p.running():
            raise LabError(f"fwhad exited early with code {p.popen.returncode}")
    return st


def vrrp_counters(st):
    v = (st or {}).get("vrrp", {})
    return {k: v.get(k) for k in ("adverts_sent", "adverts_received", *REJECTION_KEYS)}


def start_fwhad(lab, priority):
    lab.write_config(FWHAD_NODE, text=lab.config_text(FWHAD_NODE, priority=priority))
    lab.start_fwhad(FWHAD_NODE)
    return wait_for(lambda: fwhad_status(lab), 15, what="fwhad's control socket")


def wait_fwhad_state(lab, state, timeout):
    """fwhad's status once its state is `state`, and when the poll saw it (monotonic ns)."""
    st = wait_for(lambda: (lambda s: s if s and s["group"]["state"] == state else None)(
        fwhad_status(lab)), timeout, interval=0.01, what=f"fwhad {state}")
    return st, mono_ns()


def since_after(st, event_ns):
    """ms from event_ns to fwhad's last state change (status since_ms, CLOCK_MONOTONIC)."""
    return st["group"]["since_ms"] - event_ns / 1e6


def check_no_rejections(checks, st, when):
    c = vrrp_counters(st)
    bad = {k: c[k] for k in REJECTION_KEYS if c[k]}
    checks.check(not bad, f"fwhad rejected none of keepalived's adverts ({when})",
                 ", ".join(f"{k}={v}" for k, v in bad.items()) or "rejected_* and other_vrid 0")


def check_holder(lab, checks, holder, when):
    """Exactly `holder` has both VIPs (the other node none); waits a little, as a new Master
    adds them right after its state change."""
    other = KEEPALIVED_NODE if holder == FWHAD_NODE else FWHAD_NODE
    try:
        wait_for(lambda: vips_on(lab, holder) == ALL_VIPS and not vips_on(lab, other), 2,
                 interval=0.02, what=f"VIPs on {holder} only")
    except LabTimeout:
        pass
    got = {n: vips_on(lab, n) for n in (holder, other)}
    out(f"vips_{when}", " ".join(f"{n}={','.join(v) or 'none'}" for n, v in sorted(got.items())))
    checks.check(got[holder] == ALL_VIPS and not got[other],
                 f"{holder} alone holds the VIPs ({when})", str(got))


# --- phases ------------------------------------------------------------------------------------

def phase_fwhad_master(lab, checks):
    """1: fwhad Master, keepalived Backup; fwhad stops, keepalived takes over."""
    start_fwhad(lab, FWHAD_HIGH)
    wait_fwhad_state(lab, "Master", 10)
    ka = keepalived.Keepalived(lab, KEEPALIVED_NODE, KEEPALIVED_PRIORITY, "1")
    ka.start()
    wait_for(lambda: ka.all_in("BACKUP"), 5, interval=0.02, what="keepalived BACKUP")
    transitions0 = fwhad_status(lab)["group"]["transitions"]
    time.sleep(STEADY_S)
    st = fwhad_status(lab)
    out("p1_fwhad", f"{st['group']['state']} priority {FWHAD_HIGH}, transitions "
        f"{st['group']['transitions']}, {vrrp_counters(st)}")
    out("p1_keepalived", f"{ka.states()} priority {KEEPALIVED_PRIORITY}, "
        f"transitions {ka.transitions()}")
    checks.check(st["group"]["state"] == "Master" and st["group"]["transitions"] == transitions0,
                 "1: fwhad (150) stays Master with keepalived (100) running",
                 f"{st['group']['state']}, transitions {transitions0} -> "
                 f"{st['group']['transitions']}")
    checks.check(ka.all_in("BACKUP") and all(s == "BACKUP" for _, s in ka.transitions()),
                 "1: keepalived entered BACKUP and nothing else (both instances)",
                 str(ka.transitions()))
    check_holder(lab, checks, FWHAD_NODE, "p1_steady")
    check_no_rejections(checks, st, "1")

    event_ns = mono_ns()
    lab.fwhad_procs[FWHAD_NODE].signal(signal.SIGTERM)
    lab.log("1: SIGTERM to fwhad")
    wait_for(lambda: ka.all_in("MASTER"), 5, interval=0.01, what="keepalived MASTER")
    took_ms = (mono_ns() - event_ns) / 1e6
    try:
        code = lab.fwhad_procs[FWHAD_NODE].popen.wait(timeout=10)
    except Exception:  # noqa: BLE001
        code = None
    out("p1_keepalived_master_ms_after_sigterm", f"{took_ms:.0f} (poll)")
    out("p1_fwhad_exit", code)
    # fwhad first asks its peer on the sync link; keepalived has none, so it leaves with
    # priority 0 (RFC 5798 6.4.3).
    stop_line = re.search(r"handover at stop: .*", lab.log_tail(FWHAD_NODE, 400))
    out("p1_fwhad_stop", stop_line.group(0) if stop_line else "no handover line")
    got_zero = sorted(set(keepalived.PRIORITY_ZERO.findall(ka.log_text())))
    out("p1_keepalived_priority0_received", ",".join(got_zero) or "none")
    limit = master_down_ms(KEEPALIVED_PRIORITY)
    checks.check(ka.all_in("MASTER"), "1: keepalived MASTER (both instances) after fwhad's stop",
                 str(ka.states()))
    checks.check(got_zero == sorted(keepalived.INSTANCES.values()),
                 "1: keepalived received fwhad's priority-0 advert on both instances",
                 ",".join(got_zero) or "none")
    checks.check(took_ms < limit, "1: keepalived took over after Skew_Time (before its "
                 f"Master_Down_Interval, {limit:.0f} ms)", f"{took_ms:.0f} ms")
    checks.check(code == 0, "1: fwhad exited 0 after SIGTERM", f"exit {code}")
    check_holder(lab, checks, KEEPALIVED_NODE, "p1_after_stop")
    return ka


def phase_fwhad_backup(lab, checks):
    """2: fwhad restarts below keepalived's priority: Backup, keepalived's adverts counted."""
    start_fwhad(lab, FWHAD_LOW)
    st0, _ = wait_fwhad_state(lab, "Backup", 5)
    time.sleep(STEADY_S)
    st = fwhad_status(lab)
    c0, c = vrrp_counters(st0), vrrp_counters(st)
    out("p2_fwhad", f"{st['group']['state']} priority {FWHAD_LOW}, transitions "
        f"{st['group']['transitions']}, {c}")
    out("p2_fwhad_peer", st.get("peer"))
    checks.check(st["group"]["state"] == "Backup" and st["group"]["transitions"] == 1,
                 "2: fwhad (50) is Backup while keepalived (100) is Master, no other transition",
                 f"{st['group']['state']}, transitions {st['group']['transitions']}")
    expected = 2 * STEADY_S * 1000 / INTERVAL_MS     # LAN and WAN
    checks.check(c["adverts_received"] - c0["adverts_received"] >= 0.8 * expected,
                 "2: fwhad counts keepalived's adverts on both interfaces",
                 f"{c0['adverts_received']} -> {c['adverts_received']} in {STEADY_S} s, "
                 f"~{expected:.0f} expected")
    check_no_rejections(checks, st, "2")
    check_holder(lab, checks, KEEPALIVED_NODE, "p2_steady")


def phase_crash(lab, checks, ka):
    """3: keepalived crashes; fwhad takes over within its Master_Down_Interval."""
    event_ns = ka.crash()
    lab.log("3: keepalived frozen and killed")
    st, _ = wait_fwhad_state(lab, "Master", 5)
    took_ms = since_after(st, event_ns)
    mdi = master_down_ms(FWHAD_LOW)
    out("p3_fwhad_master_ms_after_crash", f"{took_ms:.0f} (status since_ms)")
    out("p3_fwhad_reason", st["group"]["last_reason"])
    # The timer ran from keepalived's last advert, up to one interval before the crash.
    checks.check(mdi - INTERVAL_MS - 30 <= took_ms <= mdi + SLACK_MS,
                 f"3: fwhad Master within its Master_Down_Interval ({mdi:.0f} ms) of "
                 "keepalived's last advert", f"{took_ms:.0f} ms after the crash, reason "
                 f"{st['group']['last_reason']}")
    check_holder_after_crash(lab, checks)


def check_holder_after_crash(lab, checks):
    try:
        wait_for(lambda: vips_on(lab, FWHAD_NODE) == ALL_VIPS, 2, interval=0.02,
                 what="VIPs on fw1")
    except LabTimeout:
        pass
    got = vips_on(lab, FWHAD_NODE)
    out("vips_p3_after_crash", f"fw1={','.join(got) or 'none'} (fw2 keeps what the killed "
        f"keepalived left: {','.join(vips_on(lab, KEEPALIVED_NODE)) or 'none'})")
    checks.check(got == ALL_VIPS, "3: fwhad holds the VIPs after keepalived's crash", str(got))


def phase_preempted(lab, checks):
    """4: keepalived starts again at a higher priority and preempts fwhad."""
    ka = keepalived.Keepalived(lab, KEEPALIVED_NODE, KEEPALIVED_PRIORITY, "2")
    ka.start()
    wait_for(lambda: ka.all_in("MASTER"), 5, interval=0.01, what="keepalived MASTER")
    st, _ = wait_fwhad_state(lab, "Backup", 3)
    out("p4_keepalived", f"{ka.states()} transitions {ka.transitions()}")
    out("p4_fwhad", f"{st['group']['state']} reason {st['group']['last_reason']}")
    checks.check(ka.all_in("MASTER"), "4: keepalived (100) preempts fwhad (50): MASTER",
                 str(ka.states()))
    checks.check(st["group"]["last_reason"] == "higher_priority_master",
                 "4: fwhad steps down to Backup on keepalived's higher-priority advert",
                 f"{st['group']['state']}, reason {st['group']['last_reason']}")
    time.sleep(STEADY_S)
    st = fwhad_status(lab)
    checks.check(st["group"]["state"] == "Backup" and ka.all_in("MASTER"),
                 "4: roles steady after the preemption",
                 f"fwhad {st['group']['state']}, keepalived {ka.states()}")
    check_holder(lab, checks, KEEPALIVED_NODE, "p4_steady")
    check_no_rejections(checks, st, "4")
    return ka


def phase_keepalived_stop(lab, checks, ka):
    """5: keepalived stops gracefully; fwhad takes over after Skew_Time."""
    event_ns = mono_ns()
    code = ka.stop()
    st, _ = wait_fwhad_state(lab, "Master", 5)
    took_ms = since_after(st, event_ns)
    out("p5_keepalived_exit", code)
    out("p5_fwhad_master_ms_after_sigterm", f"{took_ms:.0f} (status since_ms)")
    checks.check(code == 0, "5: keepalived exited 0 after SIGTERM", f"exit {code}")
    mdi = master_down_ms(FWHAD_LOW)
    checks.check(took_ms < mdi, "5: fwhad took over on keepalived's priority-0 advert (Skew_Time "
                 f"{skew_ms(FWHAD_LOW):.0f} ms, before its Master_Down_Interval {mdi:.0f} ms)",
                 f"{took_ms:.0f} ms after SIGTERM")
    check_holder(lab, checks, FWHAD_NODE, "p5_after_stop")
    check_no_rejections(checks, fwhad_status(lab), "5")


def interop_run(lab, checks, runs):
    lab.require_binaries()
    ka1 = phase_fwhad_master(lab, checks)
    runs.append(ka1)
    phase_fwhad_backup(lab, checks)
    phase_crash(lab, checks, ka1)
    ka2 = phase_preempted(lab, checks)
    runs.append(ka2)
    phase_keepalived_stop(lab, checks, ka2)
    code = lab.sigterm(FWHAD_NODE)
    out("fwhad_final_exit", code)
    checks.check(code == 0, "fwhad exited 0 at the end", f"exit {code}")


def check_keepalived_logs(checks, runs):
    errors = [line for ka in runs for line in ka.advert_errors()]
    out("keepalived_advert_errors", len(errors))
    for line in errors[:5]:
        out("keepalived_advert_error", line.strip())
    checks.check(not errors, "keepalived logged no complaint about fwhad's adverts "
                 "(checksum, TTL, version, addresses, interval)", f"{len(errors)} lines")


# --- main ------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    labrun.add_common_args(ap, max_seconds=120)
    args = ap.parse_args(argv)
    runs = []

    def body(lab, _args, checks):
        out("keepalived_version", keepalived.version())
        out("config", f"vrid {netlab.VRID}, VRRPv3, advert interval {INTERVAL_MS} ms, VIPs "
            f"{netlab.LAN_VIP}/24 (LAN) {netlab.WAN_VIP}/24 (WAN)")
        interop_run(lab, checks, runs)

    def keepalived_tails(_lab):
        for ka in runs:
            print(f"--- tail of {ka.log_path} ---")
            print("".join(ka.log_text().splitlines(True)[-30:]), end="", flush=True)

    installed = keepalived.installed()
    return labrun.run(args, "interop_keepalived", body, lab_kwargs={"conntrack": False},
                      skip_reason=None if installed else
                      f"keepalived not installed ({keepalived.KEEPALIVED})",
                      after=lambda _lab, checks: check_keepalived_logs(checks, runs),
                      on_failure=keepalived_tails)


if __name__ == "__main__":
    sys.exit(main())
