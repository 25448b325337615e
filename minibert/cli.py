"""The ``minibert`` command line."""

from __future__ import annotations

import argparse
import sys


def _cmd_exercises(args: argparse.Namespace) -> int:
    from . import exercises

    return exercises.main(["--root", str(args.root)] + (["--check"] if args.check else []))


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from . import __version__
    from .runtime import get_device, profile

    print(f"minibert {__version__}, torch {torch.__version__}, device {get_device()}, profile {profile()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minibert", description="BERT from the ground up")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions, device and course profile")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("exercises", help="regenerate exercises/ from solutions/ (or --check that it is current)")
    p.add_argument("--root", default=".", help="the course folder")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=_cmd_exercises)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
