"""Pieces the lab benchmarks share (tests/bench/sync, tests/bench/failover): progress log,
machine facts, the ct_load generator (found or built), nf_conntrack_max/buckets raised in the
initial namespace and restored on every exit path, and conntrackd's configuration (FTFW over
unicast UDP on the lab's sync link).

Not a test: imported by the bench executables, which put tests/lab on sys.path first.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time

sys.dont_write_bytecode = True
import netlab  # noqa: E402  (tests/lab, on sys.path of the importing bench)
from netlab import ADDR  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

CT_MAX_PATH = "/proc/sys/net/netfilter/nf_conntrack_max"
CT_MAX_STATE = os.path.join(os.environ.get("FWHA_LAB_TMP", "/tmp"), "fwha-bench-ctmax.json")
CT_MAX_FOR_1M = 1_114_112          # 1M generator entries + the lab's own, per namespace
CT_BUCKETS_PATH = "/proc/sys/net/netfilter/nf_conntrack_buckets"
# The kernel's default ratio is a bucket per allowed entry (max = buckets), but the lab's two
# firewalls share the kernel's one hash (namespaces have their own tables and counts, not their
# own hash): two firewalls sized for 1M each are 2M buckets. --ct-buckets sets another.
CT_BUCKETS_FOR_1M = 2_097_152
HZ = os.sysconf("SC_CLK_TCK")
CTD_PORT = 3780
T0 = time.monotonic()


def log(msg):
    print(f"[bench +{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """The bench itself cannot go on (exit 2)."""


def size_label(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# --- small system helpers ---------------------------------------------------------------------

def cpu_ticks(pid):
    """utime+stime+cutime+cstime of pid in clock ticks (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return sum(int(x) for x in fields[11:15])


def vmhwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def sched_of(pid):
    try:
        policy = os.sched_getscheduler(pid)
        prio = os.sched_getparam(pid).sched_priority
    except OSError:
        return "?"
    names = {os.SCHED_OTHER: "normal", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR",
             os.SCHED_BATCH: "SCHED_BATCH", os.SCHED_IDLE: "SCHED_IDLE"}
    name = names.get(policy, str(policy))
    return name if policy in (os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE) else f"{name} {prio}"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
            "mem_gib": round(mem_kib / 1048576, 1)}


def git_commit():
    try:
        cp = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], text=True,
                            capture_output=True, timeout=10)
        commit = cp.stdout.strip() or "?"
        cp = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                            text=True, capture_output=True, timeout=10)
        return commit + ("+dirty" if cp.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def sha256_short(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def conntrackd_version():
    try:
        cp = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "conntrackd"], text=True,
                            capture_output=True, timeout=10)
        return cp.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[i]


# --- the bench's own programs: find or build --------------------------------------------------

def find_bench_tool(name, build_dir, pkgs=(), given=None):
    """tests/bench/NAME.cpp as a binary: `given` (a command-line option) if set, else meson's
    BUILD/tests/bench/NAME when it is newer than its source, else compiled with g++ into
    $FWHA_LAB_TMP/fwha-bench-NAME (against the pkg-config packages `pkgs`)."""
    if given:
        if not os.access(given, os.X_OK):
            raise BenchError(f"{name} {given} is not executable")
        return given
    src = os.path.join(HERE, name + ".cpp")
    src_mtime = os.path.getmtime(src)
    meson_built = os.path.join(build_dir, "tests", "bench", name)
    if os.access(meson_built, os.X_OK) and os.path.getmtime(meson_built) >= src_mtime:
        return meson_built
    out_dir = os.path.join(os.environ.get("FWHA_LAB_TMP", "/tmp"), "fwha-bench-" + name)
    out = os.path.join(out_dir, name)
    if os.access(out, os.X_OK) and os.path.getmtime(out) >= src_mtime:
        return out
    os.makedirs(out_dir, exist_ok=True)
    try:
        flags = []
        if pkgs:
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", *pkgs], text=True,
                                   capture_output=True, timeout=30, check=True).stdout.split()
        cmd = ["g++", "-std=c++20", "-O2", "-Wall", "-Wextra", "-o", out + ".tmp", src, *flags]
        log(f"building {name}: " + " ".join(cmd))
        subprocess.run(cmd, check=True, timeout=300, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise BenchError(f"building {name} failed:\n{e.stderr}") from e
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"building {name} failed: {e}") from e
    os.replace(out + ".tmp", out)
    return out


def find_ct_load(args, build_dir):
    return find_bench_tool("ct_load", build_dir, ("libmnl", "libnetfilter_conntrack"),
                           given=args.ct_load)


# --- nf_conntrack_max: the one change outside the lab -----------------------------------------

class CtMax:
    """Raise nf_conntrack_max and nf_conntrack_buckets in the initial namespace for the run;
    restore both always. The kernel sizes its default max equal to the buckets (262144 here),
    so chains average one entry per direction; 1M entries in 262144 buckets would make every
    create and lookup walk chains 4x (in the lab, where both firewalls share the one global
    hash, 8x) longer than the kernel intends, for both systems alike. A firewall sized for 1M
    entries sizes its hash too (modprobe nf_conntrack hashsize=...). The failover bench's
    --trace raises nf_log_all_netns the same way, so a SIGKILLed run's is restored too."""

    SETTINGS = {"nf_conntrack_max": CT_MAX_PATH, "nf_conntrack_buckets": CT_BUCKETS_PATH,
                "nf_log_all_netns": "/proc/sys/net/netfilter/nf_log_all_netns"}

    def __init__(self):
        self.original = {}

    @staticmethod
    def _write(name, value):
        with open(CtMax.SETTINGS[name], "w") as f:
            f.write(f"{value}\n")

    @staticmethod
    def read(name="nf_conntrack_max"):
        with open(CtMax.SETTINGS[name]) as f:
            return int(f.read().strip())

    @staticmethod
    def recover_stale():
        """A run that was SIGKILLed left its state file: restore what it changed."""
        try:
            with open(CT_MAX_STATE) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return
        pid = int(st.get("pid", 0))
        if pid and netlab._pid_alive(pid) and pid != os.getpid():
            raise BenchError(f"another bench run (pid {pid}) holds {CT_MAX_STATE}; "
                             "run one bench at a time")
        original = st.get("original", {})
        if isinstance(original, int):  # state file of an older bench: max only
            original = {"nf_conntrack_max": original}
        for name, value in original.items():
            log(f"restoring {name}={value} left raised by a dead run (pid {pid})")
            CtMax._write(name, int(value))
        os.unlink(CT_MAX_STATE)

    def raise_to(self, targets):
        for name, value in targets.items():
            current = self.read(name)
            if current >= value:
                log(f"{name} is already {current} (>= {value}); not changed")
                continue
            self.original[name] = current
            with open(CT_MAX_STATE, "w") as f:
                json.dump({"pid": os.getpid(), "original": self.original}, f)
            self._write(name, value)
            log(f"{name} {current} -> {value} (restored at exit)")

    def restore(self):
        for name, value in list(self.original.items()):
            try:
                self._write(name, value)
                log(f"{name} restored to {value}")
                del self.original[name]
            except OSError as e:
                print(f"bench: restoring {name} failed: {e}", file=sys.stderr)
        if not self.original:
            try:
                os.unlink(CT_MAX_STATE)
            except OSError:
                pass


# --- conntrackd --------------------------------------------------------------------------------

CONNTRACKD_CONF = """\
# Written by the lab benchmark (tests/bench/benchlib.py). FTFW over unicast UDP on the dedicated sync link, as in
# conntrack-tools' doc/sync/ftfw/conntrackd.conf, with buffers sized for the bench.
Sync {{
\tMode FTFW {{
\t\tResendQueueSize 2097152
\t\tDisableExternalCache {disable_external}
\t}}
\tUDP {{
\t\tIPv4_address {local}
\t\tIPv4_Destination_Address {peer}
\t\tPort {port}
\t\tInterface {ifname}
\t\tSndSocketBuffer 16777216
\t\tRcvSocketBuffer 16777216
\t\tChecksum on
\t}}
}}
General {{
\tHashSize 1048576
\tHashLimit 4194304
\tLogFile {logfile}
\tLockFile {lockfile}
\tUNIX {{
\t\tPath {socket}
\t}}
\tNetlinkBufferSize 67108864
\tNetlinkBufferSizeMaxGrowth 67108864
\tFilter From Userspace {{
\t\tProtocol Accept {{
\t\t\tTCP
\t\t\tUDP
\t\t}}
\t\tAddress Ignore {{
\t\t\tIPv4_address 127.0.0.1
\t\t\tIPv4_address {lan}
\t\t\tIPv4_address {wan}
\t\t\tIPv4_address {local}
\t\t\tIPv4_address {lan_vip}
\t\t\tIPv4_address {wan_vip}
\t\t}}
\t}}
}}
"""


def conntrackd_conf(lab, fw, *, external_cache, logfile, lockfile, socket):
    """conntrackd.conf text for fw in lab: FTFW over unicast UDP on the sync link (port
    CTD_PORT), DisableExternalCache on unless external_cache, log/lock/socket in the run dir."""
    peer = "fw2" if fw == "fw1" else "fw1"
    return CONNTRACKD_CONF.format(
        disable_external="off" if external_cache else "on",
        local=ADDR[fw]["sync"], peer=ADDR[peer]["sync"], port=CTD_PORT,
        ifname=lab.ifname[(fw, "sync")], logfile=logfile, lockfile=lockfile, socket=socket,
        lan=ADDR[fw]["lan"], wan=ADDR[fw]["wan"], lan_vip=netlab.LAN_VIP, wan_vip=netlab.WAN_VIP)


def snapshot_fwha(build_dir):
    """A private copy of fwhad and fwhactl (others may rebuild build/ while a bench runs):
    (directory with src/fwhad and src/fwhactl, 'sha256:... built ...')."""
    import shutil
    import tempfile
    snapshot = tempfile.mkdtemp(prefix="fwha-bench-bin-",
                                dir=os.environ.get("FWHA_LAB_TMP", "/tmp"))
    os.makedirs(os.path.join(snapshot, "src"))
    for b in ("fwhad", "fwhactl"):
        src = os.path.join(build_dir, "src", b)
        if not os.access(src, os.X_OK):
            shutil.rmtree(snapshot, ignore_errors=True)
            raise BenchError(f"{src} missing: build first (./scripts/build)")
        shutil.copy2(src, os.path.join(snapshot, "src", b))
    fb = os.path.join(build_dir, "src", "fwhad")
    info = (f"sha256:{sha256_short(fb)} built "
            + datetime.datetime.fromtimestamp(os.path.getmtime(fb), datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ"))
    return snapshot, info
