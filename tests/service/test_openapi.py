"""The OpenAPI document is true: every reference resolves, every error is documented in the one
shape, and a schemathesis run over every operation (the app in-process, the real engine, index
and ONNX sessions) finds no server error and no status, content-type, header or schema mismatch."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from service.app import create_app
from service.config import Settings
from service.engine import Engine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(engine):
    """The app over the session's engine parts; no cache, so every request does its real work."""
    s = engine.settings.model_copy(update={"redis_url": ""})
    return create_app(s, Engine(s, engine.bundle, engine.searcher, engine.cache))


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_resolves_and_every_error_has_the_one_shape(app):
    doc = app.openapi()
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert "#/components/schemas/ImageJSONRequest" in refs
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas)
    assert "HTTPValidationError" not in schemas  # FastAPI's list-shaped 422 is documented nowhere
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "500" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and (path, status) != ("/readyz", "503"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorResponse", (method, path, status)
            if op.get("requestBody"):
                assert {"400", "413", "422"} <= set(responses), (method, path)
    image_body = doc["paths"]["/encode"]["post"]["requestBody"]["content"]
    assert set(image_body) == {"multipart/form-data", "application/json"}


# The document does not depend on the engine: read it from an app that has none, and send the
# generated requests to the module's app, which serves with the real engine.
api = schemathesis.openapi.from_dict(create_app(Settings(redis_url="")).openapi())


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
]
# positive_data_acceptance is left out on purpose: a request can match the schema and still be
# refused for what it means (a query of words outside the vocabulary, random bytes as an image),
# and those are the documented 4xx answers, not mismatches.


@api.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_matches_its_openapi_document(case, app):
    checks = CHECKS
    if case.media_type == "multipart/form-data":
        # a multipart field is text: an array or object generated for a string field arrives as
        # its JSON text, a valid string; the JSON body of the same operation checks rejection
        checks = [c for c in CHECKS if c is not negative_data_rejection]
    case.call_and_validate(app=app, checks=checks)
