"""Schemathesis against a live API: generated requests never get a 5xx or an undocumented answer.

The node runs in its own trio loop in a thread (hypercorn on 127.0.0.1, port
0), as in production; schemathesis calls it over real HTTP with the owner's
token and checks every answer against the served OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from p2pdm.api import openapi_document
from p2pdm.api.events import MAX_POLL_TIMEOUT_S
from p2pdm.core.identity import PeerId
from tests.conftest import TOKEN, make_node, serving_in_thread

#: Examples per operation: enough to reach every parameter and error path of
#: this small API, few enough that the whole run takes seconds.
EXAMPLES_PER_OPERATION = 25
#: Longest long poll a generated request may ask for, in seconds; the API
#: allows 50, which would make each such example wait that long.
MAX_TEST_POLL_S = 1

schema = schemathesis.openapi.from_dict(openapi_document()).exclude(
    # An endless text/event-stream: tested by hand in test_api_events.py.
    operation_id="streamEvents"
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite())
    node.peer_online(PeerId.from_public_key(b"\x0c" * 32))
    with serving_in_thread(node) as port:
        yield f"http://127.0.0.1:{port}"


Operation = APIOperation[Any, Any, Any, Any]


def operations() -> list[Operation]:
    """Every operation of the document; raises if the document has a broken one."""
    found: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


#: One test each, named "METHOD path".
OPERATIONS = operations()


@pytest.mark.parametrize(
    "operation", OPERATIONS, ids=[f"{op.method.upper()} {op.path}" for op in OPERATIONS]
)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_the_api_matches_its_document(
    operation: Operation, base_url: str, data: st.DataObject
) -> None:
    # Valid and invalid requests alike, as schemathesis' own runner draws them.
    modes = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    case = data.draw(st.one_of(modes), label="case")
    query = case.query or {}
    if any(value in ([], {}) for value in query.values()):
        # A negative case that adds an unknown parameter holding an empty array
        # or object sends no parameter at all: what reaches the server is a
        # correct request, yet schemathesis would expect it refused.
        return
    timeout = query.get("timeout")
    if isinstance(timeout, int) and MAX_TEST_POLL_S < timeout <= MAX_POLL_TIMEOUT_S:
        case.query["timeout"] = MAX_TEST_POLL_S  # still valid, but a short wait
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        # The document gives the shapes; the node also checks meaning (a string
        # that is no PeerID, an empty text, a damaged invite) and answers such
        # schema-valid input with a documented 400/404/422. Every other check
        # runs: no 5xx, documented status, media type, headers and body, and
        # schema-invalid input refused.
        excluded_checks=[positive_data_acceptance],
    )
