"""The CRD on a real API server gives every single-field case derived from the field table
(tests/support/fieldcases.py) the model's verdict: both accept it, or both refuse it naming the field.
The table makes both sides (the CRD's schema and the model's reading); this shows the server reads the
generated schema as the model reads the table. Server-side dry runs, milliseconds apiece."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.apiserver.conftest import Server
from tests.support.fieldcases import FieldCase, field_cases, model_paths
from tests.support.verdicts import dotted, dry_run, related

NAMESPACE = "qw-fields"


@pytest.fixture(scope="module")
def server(crd_server: Server) -> Iterator[Server]:
    crd_server.kubectl("create", "namespace", NAMESPACE)
    yield crd_server


@pytest.mark.parametrize("case", field_cases(), ids=lambda c: c.id)
def test_api_server_and_model_agree_on_each_field(server: Server, case: FieldCase) -> None:
    obj = case.manifest()
    model = [dotted(p) for p in model_paths(obj)]
    stored, named, message = dry_run(server.api, NAMESPACE, obj)
    assert (stored is not None) == case.valid == (model == []), (model, message)
    if not case.valid:
        field = dotted(case.path)
        assert any(related(p, field) for p in named), (field, named, message)
        assert any(related(p, field) for p in model), (field, model)
