"""Arguments several `qw` subcommands share (the subcommands: queueworker.cli)."""

from __future__ import annotations

import argparse


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    """`-f FILE|DIR` (repeatable) and `-R`, as kubectl takes them."""
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        required=True,
        metavar="FILE|DIR",
        help="a manifest file or a directory of them; repeat for more",
    )
    parser.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="also read the subdirectories of DIR (as kubectl apply -R)",
    )
