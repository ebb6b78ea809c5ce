"""load_manifests and format_errors: files and trees, multi-document YAML, errors per document."""

from __future__ import annotations

from pathlib import Path

from queueworker.api.manifests import format_errors, load_manifests

GOOD = """\
apiVersion: queueworker.dev/v1alpha1
kind: QueueWorker
metadata: {{name: {name}}}
spec: {{app: shop.tasks, queues: [{queues}]}}
"""


def good(name: str, queues: str) -> str:
    return GOOD.format(name=name, queues=queues)


def test_directory_is_read_sorted_and_recursively_on_request(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(good("b", "qb"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yml").write_text(good("a", "qa"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.yaml").write_text("not: [a, manifest")
    (tmp_path / ".hidden.yaml").write_text("not: [a, manifest")
    (tmp_path / "a.yaml").write_text("---\n" + good("c", "qc") + "---\n---\n" + good("d", "qd"))
    loaded = load_manifests(tmp_path, recursive=True)
    assert [(Path(x.file).name, x.index, x.qw.name if x.qw else None) for x in loaded] == [
        ("a.yaml", 1, "c"),
        ("a.yaml", 3, "d"),
        ("b.yaml", 1, "b"),
        ("a.yml", 1, "a"),
    ]
    # like `kubectl apply -f DIR`, subdirectories are read only when asked (-R)
    assert [Path(x.file).name for x in load_manifests(tmp_path)] == ["a.yaml", "a.yaml", "b.yaml"]
    assert all(not x.errors for x in loaded)
    assert format_errors(loaded) == []


def test_single_file_and_namespace(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(good("a", "q"))
    (loaded,) = load_manifests(str(path), default_namespace="shop")
    assert loaded.qw is not None and loaded.qw.namespace == "shop"


def test_errors_are_formatted_per_file_and_document(tmp_path: Path) -> None:
    multi = tmp_path / "multi.yaml"
    multi.write_text(good("a", "qa") + "---\n" + good("b", "qb").replace("queues", "queue"))
    single = tmp_path / "single.yaml"
    single.write_text(good("c", "qc").replace("shop.tasks", "'shop tasks'"))
    loaded = load_manifests(tmp_path)
    lines = format_errors(loaded)
    assert lines[0] == f"{multi} [doc 2]: spec.queue: unknown field; did you mean 'queues'?"
    assert (
        lines[1] == f"{multi} [doc 2]: spec.queues: required: the queues the workers consume, e.g. [emails]"
    )
    assert lines[2].startswith(f"{single}: spec.app: must be a Celery app")
    assert len(lines) == 3
    assert [x.qw is not None for x in loaded] == [True, False, False]


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(good("a", "q") + "---\nspec:\n  app: [x\n")
    loaded = load_manifests(path)
    assert loaded[0].qw is not None
    assert loaded[-1].qw is None
    (line,) = format_errors(loaded)
    assert line.startswith(f"{path} [doc 2]: invalid YAML at line ")
    dup = tmp_path / "dup.yaml"
    dup.write_text("kind: QueueWorker\nkind: QueueWorker\n")
    (line,) = format_errors(load_manifests(dup))
    assert line == f"{dup}: invalid YAML at line 2, column 1: duplicate key 'kind' in a mapping"


def test_other_kinds_and_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n- a list\n")
    lines = format_errors(load_manifests(path))
    assert lines == [
        f"{path} [doc 1]: kind: must be QueueWorker (apiVersion queueworker.dev/v1alpha1), got ConfigMap",
        f"{path} [doc 2]: kind: must be a QueueWorker object (a mapping), got a list",
    ]


def test_duplicate_names_and_shared_queues(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(good("emails", "emails, bulk"))
    (tmp_path / "b.yaml").write_text(good("emails", "other") + "---\n" + good("bulk", "x, bulk"))
    other_ns = good("emails", "emails").replace("{name: emails}", "{name: emails, namespace: prod}")
    (tmp_path / "c.yaml").write_text(other_ns)
    loaded = load_manifests(tmp_path)
    lines = format_errors(loaded)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert lines == [
        f"{b} [doc 1]: metadata.name: duplicate QueueWorker default/emails: also defined in {a}",
        f"{b} [doc 2]: spec.queues[1]: queue 'bulk' is already consumed by QueueWorker "
        f"default/emails ({a}); a queue belongs to one QueueWorker per namespace",
    ]
    assert [x.qw is not None for x in loaded] == [True, False, False, True]


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    assert format_errors(load_manifests(tmp_path / "nope.yaml")) == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory"
    ]
    assert load_manifests(tmp_path) == []
    (tmp_path / "empty.yaml").write_text("---\n# nothing\n")
    assert load_manifests(tmp_path) == []


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    (line,) = format_errors(load_manifests(path))
    assert line.startswith(f"{path}: cannot read")
