"""Read QueueWorker manifests from a file or a directory, the way `qw render`, `qw up` and the tests do.

`load_manifests(path)` reads one file, or every *.yaml / *.yml in a directory (sorted; its
subdirectories too with recursive=True, as `kubectl apply -f DIR -R`; hidden files and folders
skipped), splits multi-document YAML (empty documents are skipped), parses each document with the
spec model and returns one `Loaded` per document: its QueueWorker, or every error found in it. YAML
syntax errors name the line; a document of another kind is an error at `kind`. Across all documents,
two QueueWorkers with one name in one namespace, or one queue consumed by two QueueWorkers of one
namespace, are errors too. `format_errors` renders them as `FILE: <field path>: <message>` lines.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from queueworker.api.kubeyaml import KubeLoader, construct_mapping
from queueworker.api.spec import API_VERSION, KIND, FieldError, QueueWorker, SpecError, parse_manifest

SUFFIXES = (".yaml", ".yml")


@dataclass
class Loaded:
    """One YAML document: the QueueWorker it defines, or (with qw None) the errors found in it."""

    file: str
    index: int  # 1-based document number within the file
    qw: QueueWorker | None
    errors: list[FieldError] = field(default_factory=list)
    documents: int = 1  # how many non-empty documents the file holds (for `[doc N]` in messages)

    @property
    def where(self) -> str:
        return f"{self.file} [doc {self.index}]" if self.documents > 1 else self.file


#: Most nodes a document may expand to through YAML aliases (a "billion laughs" document expands to
#: billions from a few hundred bytes and would hang every walk over it); documents without aliases are
#: bounded by their size instead.
MAX_ALIAS_EXPANSION = 100_000


class _StrictLoader(KubeLoader):
    """kubectl's YAML (`kubeyaml`), rejecting duplicate keys in a mapping (kubectl does too) and alias
    bombs."""

    def construct_document(self, node: yaml.Node) -> Any:
        counts = _node_counts(node)
        if counts is None:
            raise yaml.constructor.ConstructorError(
                None, None, "a recursive alias (a value that contains itself) is not allowed", node.start_mark
            )
        unique, expanded = counts
        if expanded > unique and expanded > MAX_ALIAS_EXPANSION:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"aliases expand this document to more than {MAX_ALIAS_EXPANSION} nodes",
                node.start_mark,
            )
        return super().construct_document(node)


def _node_counts(root: yaml.Node) -> tuple[int, int] | None:
    """(distinct nodes, nodes once every alias is expanded), in time linear in the distinct nodes;
    None when a node contains itself (a recursive alias: no JSON value is like that)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: a node's size once all its children have theirs
        node, children_done = stack.pop()
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in _children(node)), 2**62)
            open_.discard(id(node))
            continue
        if id(node) in sizes:
            continue
        sizes[id(node)] = 0
        open_.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                return None
            if id(child) not in sizes:
                stack.append((child, False))
    return len(sizes), sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} in a mapping", key_node.start_mark
            )
        if isinstance(key, Hashable):
            seen.add(key)
    return construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def manifest_files(path: Path, recursive: bool = False) -> list[Path]:
    """`path` itself, or the *.yaml / *.yml files in it (and in its subdirectories when `recursive`),
    sorted, skipping hidden files and folders (.git, .venv, ...)."""
    if not path.is_dir():
        return [path]
    candidates = path.rglob("*") if recursive else path.iterdir()
    found = (p for p in candidates if p.suffix in SUFFIXES and p.is_file())
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(path).parts))


def _yaml_error(exc: yaml.YAMLError) -> FieldError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return FieldError("", f"invalid YAML{where}: {problem}")


def _documents(file: Path) -> tuple[list[tuple[int, Any]], list[FieldError]]:
    """(1-based document number, document) for the non-empty documents, and a read or syntax error."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return [], [FieldError("", f"cannot read: {reason}")]
    docs: list[tuple[int, Any]] = []
    try:
        for number, doc in enumerate(yaml.load_all(text, Loader=_StrictLoader), start=1):
            if doc is not None:
                docs.append((number, doc))
    except yaml.YAMLError as exc:
        return docs, [_yaml_error(exc)]
    except RecursionError:  # PyYAML composes nested collections recursively
        return docs, [FieldError("", "invalid YAML: collections nested hundreds of levels deep")]
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (4300)
        return docs, [FieldError("", f"invalid YAML: {exc}")]
    return docs, []


def _parse(doc: Any, default_namespace: str) -> tuple[QueueWorker | None, list[FieldError]]:
    if isinstance(doc, dict) and "kind" in doc and doc["kind"] != KIND:
        got = doc["kind"] if isinstance(doc["kind"], str) else repr(doc["kind"])
        return None, [FieldError("kind", f"must be {KIND} (apiVersion {API_VERSION}), got {got}")]
    try:
        return parse_manifest(doc, default_namespace), []
    except SpecError as exc:
        return None, list(exc.errors)


def load_manifests(
    path: str | Path, default_namespace: str = "default", recursive: bool = False
) -> list[Loaded]:
    """Every document under `path`, parsed; see the module docstring."""
    root = Path(path)
    if not root.exists():
        return [Loaded(str(root), 1, None, [FieldError("", "no such file or directory")])]
    loaded: list[Loaded] = []
    for file in manifest_files(root, recursive):
        docs, problems = _documents(file)
        count = len(docs) + (1 if problems else 0)
        for number, doc in docs:
            qw, errors = _parse(doc, default_namespace)
            loaded.append(Loaded(str(file), number, qw, errors, count))
        if problems:
            last = docs[-1][0] + 1 if docs else 1
            loaded.append(Loaded(str(file), last, None, problems, count))
    _cross_check(loaded)
    return loaded


def _cross_check(loaded: list[Loaded]) -> None:
    """Names unique per namespace; each queue consumed by one QueueWorker per namespace."""
    names: dict[tuple[str, str], Loaded] = {}
    queues: dict[tuple[str, str], Loaded] = {}
    for item in loaded:
        qw = item.qw
        if qw is None:
            continue
        first = names.setdefault((qw.namespace, qw.name), item)
        if first is not item:
            item.errors.append(
                FieldError(
                    "metadata.name",
                    f"duplicate QueueWorker {qw.namespace}/{qw.name}: also defined in {first.where}",
                )
            )
            continue
        for i, queue in enumerate(qw.spec.queues):
            owner = queues.setdefault((qw.namespace, queue), item)
            if owner is not item and owner.qw is not None:
                item.errors.append(
                    FieldError(
                        f"spec.queues[{i}]",
                        f"queue {queue!r} is already consumed by QueueWorker {qw.namespace}/{owner.qw.name} "
                        f"({owner.where}); a queue belongs to one QueueWorker per namespace",
                    )
                )
    for item in loaded:
        if item.errors:
            item.qw = None


def format_errors(loaded: Iterable[Loaded]) -> list[str]:
    """`FILE: <field path>: <message>` lines (`FILE [doc N]: ...` when the file holds several documents)."""
    return [f"{item.where}: {error}" for item in loaded for error in item.errors]
