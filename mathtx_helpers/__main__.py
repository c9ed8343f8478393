"""Command line of mathtx (each command has --help):

    python -m mathtx_helpers figures  [--profile P] [--only NN ...]   execute the notebooks, publish figures
    python -m mathtx_helpers profiles [--profile P]                  list profiles and their runs' status
    python -m mathtx_helpers train    [--profile P] [--run NAME ...] train (or resume) a profile's runs
    python -m mathtx_helpers predict  [--profile P] [--run NAME ...] predict their test sets
    python -m mathtx_helpers results  [--check]                      README's and docs/claims.md's tables
    python -m mathtx_helpers restore  [--profile P]                  put the shipped models/ into data/runs/
    python -m mathtx_helpers retrain  [--profile P] [--run NAME ...] train from scratch, compare with models/
    python -m mathtx_helpers ship     [--profile P] [--run NAME ...] write finished runs' weights to models/

train also runs under torchrun: `torchrun --nproc_per_node=2 -m mathtx_helpers train --run NAME`.
"""

from __future__ import annotations

import argparse
import sys

from .core.parallel import JobFailed
from .core.runs import RunBusy
from .profiles import DEFAULT_PROFILE, PROFILE_ENV, PROFILES


def _profile_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help=f"default: ${PROFILE_ENV}, else {DEFAULT_PROFILE}")


def _runs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", nargs="+", metavar="NAME", help="only these runs of the profile (default: all)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mathtx_helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    fig = sub.add_parser("figures", help="execute the notebooks in order and publish their figures")
    _profile_arg(fig)
    fig.add_argument("--only", nargs="+", metavar="NN", help="only notebooks whose name starts with these")

    prof = sub.add_parser("profiles", help="list the profiles and the status of their runs")
    _profile_arg(prof)

    tr = sub.add_parser("train", help="train (or resume) runs of a profile; finished runs are skipped")
    _profile_arg(tr)
    _runs_arg(tr)
    tr.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    tr.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="train N matrix runs at a time side by side, one process each (default 1). On a GPU this "
                         "uses it better (3 runs: ~2x the examples/s of one). On CPU each run gets cores/N threads, "
                         "so its results differ bit-wise from --jobs 1")
    tr.add_argument("--threads", type=int, default=None, metavar="T",
                    help="train every matrix run in its own process with T threads (a run's bytes depend on T, "
                         "not on the core count; make retrain uses each run's own: 2 for eigen-decomposition, 1 for "
                         "the others)")

    pr = sub.add_parser("predict", help="predict the test sets of a profile's (finished) runs")
    _profile_arg(pr)
    _runs_arg(pr)
    pr.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")

    res = sub.add_parser("results", help="rewrite README's headline table and verdicts and docs/claims.md from "
                                         "figures/*_claims.csv")
    res.add_argument("--check", action="store_true", help="only check that README matches the CSVs (exit 1 if not)")

    rs = sub.add_parser("restore", help="restore the shipped weights (models/<profile>/) into the run store; runs "
                                        "already there are left alone")
    _profile_arg(rs)

    rt = sub.add_parser("retrain", help="train runs from scratch as the shipped ones were trained (each on its own "
                                        "thread count: 2 for eigen-decomposition, 1 for the others), "
                                        "then say whether each is bit-identical to its shipped weights")
    _profile_arg(rt)
    _runs_arg(rt)
    rt.add_argument("--jobs", type=int, default=None, metavar="N", help="cores to fill (default: all): one-thread runs "
                    "side by side, two-thread runs N // 2 at a time")

    sh = sub.add_parser("ship", help="write finished runs' weights, curves and hashes to models/<profile>/ "
                                     "(for runs trained by retrain)")
    _profile_arg(sh)
    _runs_arg(sh)

    args = parser.parse_args(argv)
    try:
        if args.command == "figures":
            from . import runner

            return runner.run(args.profile, args.only)
        if args.command == "results":
            from . import runner

            return runner.results(check=args.check)
        from . import jobs, profiles

        prof = profiles.get_profile(args.profile)
        if args.command == "profiles":
            names = [prof.name] if args.profile else list(PROFILES)
            for name in names:
                p = PROFILES[name]
                print(f"{p.name:6s} {p.description}  (figures -> {p.figures}/)")
                for line in jobs.status_lines(p):
                    print("   " + line)
            return 0
        if args.command == "restore":
            from . import shipping

            lines = shipping.restore(prof)
            print("\n".join(lines) or f"nothing to restore for profile {prof.name}")
            return 0
        specs = jobs.select_runs(prof, args.run)
        if args.command == "retrain":
            return jobs.retrain(prof, specs, jobs=args.jobs)
        if args.command == "ship":
            return jobs.ship(prof, specs)
        if args.command == "train":
            return jobs.train_runs(prof, specs, device=args.device, jobs=args.jobs, threads=args.threads)
        return jobs.predict_runs(prof, specs, device=args.device)
    except ValueError as e:
        parser.error(str(e))
    except (RunBusy, JobFailed) as e:  # another process is training the run, or a run failed in its own process
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
