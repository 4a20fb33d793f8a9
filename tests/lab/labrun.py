"""The frame every lab driver shares: root check, wall-clock cap, a Lab that is torn down on
every exit path, errors of the lab told apart from failed checks, the fwhad logs on failure,
and the exit status (0 pass, 1 a check failed with --assert, 2 the lab failed, 77 skipped).

    def main():
        ap = argparse.ArgumentParser(...)
        labrun.add_common_args(ap, max_seconds=120)
        args = ap.parse_args()
        return labrun.run(args, "rejoin", body, lab_kwargs={...})

`body(lab, args, checks)` does the scenario; it raises LabError when the lab itself fails.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from netlab import FWS, LabError, LabInterrupted  # noqa: E402
from scenario import Checks, out  # noqa: E402


def add_common_args(ap, max_seconds):
    ap.add_argument("--assert", dest="do_assert", action="store_true",
                    help="exit non-zero when an expectation fails")
    ap.add_argument("--verbose", action="store_true", help="print a timeline")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--max-seconds", type=int, default=max_seconds, help="wall-clock cap")


def run(args, name, body, *, lab_kwargs=None, skip_reason=None, after=None, on_failure=None,
        finish=None):
    """Runs body(lab, args, checks) in a fresh lab; returns the exit status. after(lab,
    checks): more checks once the body ended, even when it failed; on_failure(lab): more to
    print when it failed; finish(): last lines after the result (e.g. a summary)."""
    if os.geteuid() != 0:
        print("skip: the lab needs root (network namespaces)")
        return 77
    if skip_reason:
        print(f"skip: {skip_reason}")
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
    out("scenario", name)
    t0 = time.monotonic()
    lab_error = None
    lab = netlab.Lab(verbose=args.verbose, keep=args.keep, log=timeline, **(lab_kwargs or {}))
    try:
        with lab:
            out("run", f"{lab.prefix} {lab.run_dir}")
            try:
                body(lab, args, checks)
            except (LabError, LabInterrupted) as e:
                lab_error = f"{type(e).__name__}: {e}"
                out("lab_error", lab_error)
            except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
                # Usually fwhactl's JSON not matching the contract; show where.
                traceback.print_exc(file=sys.stdout)
                lab_error = f"{type(e).__name__}: {e}"
                out("lab_error", lab_error)
            if after:
                after(lab, checks)
            if lab_error or (args.do_assert and checks.failed):
                lab.failed = True
                for fw in FWS:
                    print(f"--- tail of {fw}'s fwhad log ({lab.log_path(fw)}) ---")
                    print(lab.log_tail(fw), end="", flush=True)
                if on_failure:
                    on_failure(lab)
    except (LabInterrupted, LabError) as e:  # during setup or teardown
        lab_error = lab_error or str(e)
        out("lab_error", lab_error)
    finally:
        signal.alarm(0)
    out("runtime_s", f"{time.monotonic() - t0:.1f}")
    if lab_error:
        out("result", f"ERROR ({lab_error})")
        status = 2
    elif checks.failed:
        out("result", "FAIL: " + "; ".join(checks.failed))
        status = 1 if args.do_assert else 0
    else:
        out("result", "PASS")
        status = 0
    if finish:
        finish()
    return status
