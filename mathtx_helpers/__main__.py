"""Command line: python -m mathtx_helpers {figures,profiles} ... (--help on each)."""

from __future__ import annotations

import argparse
import sys

from .profiles import DEFAULT_PROFILE, PROFILE_ENV, PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mathtx_helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fig = sub.add_parser("figures", help="execute the notebooks in order and publish their figures")
    fig.add_argument("--profile", choices=list(PROFILES), default=None,
                     help=f"default: ${PROFILE_ENV}, else {DEFAULT_PROFILE}")
    fig.add_argument("--only", nargs="+", metavar="NN", help="only notebooks whose name starts with these")

    sub.add_parser("profiles", help="list the profiles")

    args = parser.parse_args(argv)
    if args.command == "figures":
        from . import runner

        try:
            return runner.run(args.profile, args.only)
        except ValueError as e:
            parser.error(str(e))
    if args.command == "profiles":
        for p in PROFILES.values():
            print(f"{p.name:6s} {p.description}  (figures -> {p.figures}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
