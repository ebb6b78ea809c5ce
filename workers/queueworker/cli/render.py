"""`qw render -f FILE|DIR [-n NAMESPACE]`: print, as a YAML stream, exactly the Kubernetes objects the
operator creates for the QueueWorkers in FILE or in every *.yaml in DIR (-R: and its subdirectories).

Invalid input prints one `FILE: <field path>: <message>` line per problem to stderr, nothing to stdout,
and exits 2. The operator's QUEUEWORKER_* settings (image, Secret, names) apply here too.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from queueworker.cli.args import add_manifest_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "render",
        help="print the Kubernetes objects QueueWorker manifests become",
        description="Print, as a YAML stream, the objects the operator creates for the QueueWorkers in "
        "FILE or in every *.yaml/*.yml in DIR (-R: also its subdirectories; multi-document files "
        "allowed). Invalid manifests: "
        "one `FILE: field.path: message` line each on stderr, exit status 2.",
    )
    add_manifest_arguments(p)
    p.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace for manifests that set none (default: default)",
    )
    p.set_defaults(func=run)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """A YAML stream of `objects`: keys in the builders' order, no anchors, sequences indented,
    multi-line strings as literal blocks, long lines unfolded."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)  # indent sequences under their key (yamllint's default)

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        block = "\n" in value and all(line == line.rstrip() for line in value.splitlines())
        style = "|" if block else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(
        objects, Dumper=Dumper, sort_keys=False, explicit_start=True, default_flow_style=False, width=10_000
    )


def load(paths: list[str], namespace: str, recursive: bool = False) -> tuple[list[Any], list[str]]:
    """The QueueWorkers under `paths`, or every error as a `FILE: path: message` line."""
    from queueworker.api.manifests import format_errors, load_manifests
    from queueworker.builders import problems

    qws: list[Any] = []
    errors: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        loaded = load_manifests(path, default_namespace=namespace, recursive=recursive)
        if not loaded:
            errors.append(f"{path}: no QueueWorker manifests found (looked for *.yaml and *.yml)")
        errors += format_errors(loaded)
        for item in loaded:
            if item.qw is None or item.errors:
                continue
            key = (item.qw.namespace, item.qw.name)
            if key in seen and seen[key] != item.where:
                errors.append(
                    f"{item.where}: metadata.name: duplicate QueueWorker {key[0]}/{key[1]}: "
                    f"also defined in {seen[key]}"
                )
                continue
            seen[key] = item.where
            found = problems(item.qw)
            errors += [f"{item.where}: {problem}" for problem in found]
            if not found:
                qws.append(item.qw)
    return qws, errors


def run(args: argparse.Namespace) -> int:
    from queueworker.api.checks import is_dns_label
    from queueworker.builders import render
    from queueworker.settings import ConfigError, Settings

    def fail(lines: list[str]) -> int:
        for line in lines:
            print(re.sub(r"\s*\n\s*", " ", line), file=sys.stderr)  # one line per problem
        return 2

    namespace = args.namespace if args.namespace is not None else "default"
    if not is_dns_label(namespace):
        return fail([f"-n/--namespace: {namespace!r} is not a namespace name (a-z, 0-9, '-'; at most 63)"])
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail([f"environment: {problem}" for problem in str(exc).split("; ")])
    qws, errors = load(list(args.paths), namespace, args.recursive)
    if errors:
        return fail(errors)
    text = to_yaml(render(qws, settings))
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `qw render ... | head`
        return 0
    return 0
