"""The API checked against its own OpenAPI document by schemathesis, on a live `catdog serve`:
every operation, generated valid and invalid inputs; no 5xx, and every answer's status,
content type, headers and body must be what /docs says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from serving_support import run_server, write_tiny_model

from catdog.serving.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "schema-token"
# Enough cases to reach every documented status of every operation, few enough for `make test`.
EXAMPLES = 50


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    folder = tmp_path_factory.mktemp("schema")
    model = write_tiny_model(folder / "tiny")
    env = {"CATDOG_API_TOKEN": TOKEN, "CATDOG_RUNNERS": "1"}
    assert Settings().model is None  # the test's settings come from `env` alone
    with run_server(folder, "--model", str(model), env=env) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def check_operation(
    operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, cases: list[str]
) -> None:
    """Run EXAMPLES generated cases of one operation through the checks."""
    headers = {"Authorization": f"Bearer {TOKEN}"} if operation.path.startswith("/admin") else None

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        cases.append(operation.label)
        # No server error, and conformance. (The data-acceptance checks are left out: random
        # bytes sent as a "photo" are valid multipart and rightly refused as not_an_image.)
        case.call_and_validate(
            headers=headers,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
            timeout=30,
        )

    try:
        check()
    except Unsatisfiable:  # no invalid input exists for an operation that takes none
        assert mode is schemathesis.GenerationMode.NEGATIVE and operation.method == "get"


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_every_operation_answers_what_its_schema_says(
    live_schema: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    cases: list[str] = []
    operations = [result.ok() for result in live_schema.get_all_operations()]
    for operation in operations:
        check_operation(operation, mode, cases)
    labels = {operation.label for operation in operations}
    posts = {"POST /predict", "POST /predict/batch", "POST /admin/reload"}
    assert posts <= labels
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert set(cases) == labels, "every operation was called"
    assert posts <= set(cases), "every operation that takes input got invalid input too"
    print(f"schemathesis {mode}: {len(labels)} operations, {len(cases)} cases")
