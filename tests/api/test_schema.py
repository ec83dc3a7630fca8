"""Schemathesis against a live API: the document and the server agree, both ways.

The node runs in its own trio loop in a thread (hypercorn on 127.0.0.1, port
0), as in production; schemathesis calls it over real HTTP with the owner's
token and runs every check on every answer: no 5xx, a documented status,
media type, headers and body, a request the document refuses is refused, and
a request the document accepts is accepted. Three phases run: random requests
per operation (valid and invalid), schemathesis' coverage cases per operation
(each boundary and each violation of each constraint, deterministic), and the
stateful phase, which chains operations through the links it infers (a created
token revoked, a message read back). The document has no examples, so the
examples phase would add nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import Case as GenericCase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.core.transport import Response
from schemathesis.generation.meta import TestPhase
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from p2pdm.api import openapi_document
from p2pdm.api.events import MAX_POLL_TIMEOUT_S
from p2pdm.core.identity import PeerId
from p2pdm.limits import MAX_NAME_BYTES, MAX_TEXT_BYTES
from p2pdm.store.search_text import QUERY_PATTERN
from tests.conftest import TOKEN, make_node, serving_in_thread

#: Random requests per operation: enough to reach every parameter and error
#: path of this small API, few enough that the whole file takes seconds.
EXAMPLES_PER_OPERATION = 25
#: Coverage cases run per operation (schemathesis makes a few dozen each).
MAX_COVERAGE_CASES = 200
#: Stateful scenarios and steps per scenario.
STATEFUL_SCENARIOS = 20
STATEFUL_STEPS = 6
#: Body fields capped in bytes of UTF-8, which JSON Schema cannot say: the
#: document gives the cap as a maxLength in characters, which is looser.
BYTE_CAPS = {"name": MAX_NAME_BYTES, "text": MAX_TEXT_BYTES}
#: Longest long poll a generated request may ask for, in seconds; the API
#: allows 50, which would make each such example wait that long.
MAX_TEST_POLL_S = 1

Operation = APIOperation[Any, Any, Any, Any]
Case = GenericCase[Any]

schema = schemathesis.openapi.from_dict(openapi_document()).exclude(
    # An endless text/event-stream: tested by hand in test_events.py.
    operation_id="streamEvents"
)
# The token as the configured credential, so that a case testing what happens
# without it (a negative case dropping the security header) is sent without it.
schema.config.update(headers={"Authorization": f"Bearer {TOKEN}"})
# A 422 from this API means "well formed, but the node's state refuses it": no
# session with that PeerID yet, an idempotency key used for another message, a
# token name that exists or too many tokens, an expired invite. No schema can
# say which PeerIDs have sessions or which names are taken, so a valid request
# may get it (as it may get a 404 or a 409, which schemathesis allows already).
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses,
    "422",
]
# A request the document refuses may also be too large to read: a body over
# the API's cap (256 KiB) is refused with 413 before it is parsed. Schemathesis
# makes such bodies from long fields (a picture's base64) whose characters
# JSON escapes six bytes each.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses,
    "413",
]


def accepts_valid_requests(ctx: Any, response: Response, case: Case) -> bool | None:
    """positive_data_acceptance, less the refusals no schema can foresee."""
    body = case.body if isinstance(case.body, dict) else {}
    if response.status_code == 400 and "invite" in body and _code(response) == "bad_invite":
        return None  # an invite is signed by its key: no generated string is one
    if response.status_code == 400 and body.get("reply_to") and "reply_to" in _message(response):
        # Which message ids a conversation holds is the node's state: a generated
        # id is well formed and answered 400 as docs/api.md says (not one of its).
        return None
    if any(_utf8_len(body.get(key)) > cap for key, cap in BYTE_CAPS.items()):
        return None  # a byte cap: the document's maxLength counts characters
    if any(value in (None, "None") for value in (case.path_parameters or {}).values()):
        # A link schemathesis inferred (Event.message_id → a message path) copied
        # a null: the path then says "None", which no document calls a message id.
        return None
    if case.path == "/v1/search" and response.status_code == 400 and not _has_word(case):
        # A search needs a letter or digit of any script; an OpenAPI pattern is
        # ECMA-262, whose \w knows only ASCII, so the document says it in words.
        return None
    return positive_data_acceptance(ctx, response, case)


def _has_word(case: Case) -> bool:
    query = (case.query or {}).get("q")
    return isinstance(query, str) and re.search(QUERY_PATTERN, query) is not None


def _utf8_len(value: object) -> int:
    return len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0


def no_unforeseen_server_error(ctx: Any, response: Response, case: Case) -> bool | None:
    """not_a_server_error, less the documented 503 of a node off the network.

    The node under test has no network: a directory lookup is answered 503
    ``not_connected``, as the document says, which is not the server failing.
    """
    if response.status_code == 503 and _code(response) == "not_connected":
        return None
    return not_a_server_error(ctx, response, case)


def _code(response: Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _message(response: Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    node = make_node("alice")
    node.add_contact_from_invite(make_node("bob").invite())
    node.peer_online(PeerId.from_public_key(b"\x0c" * 32))
    with serving_in_thread(node) as port:
        yield f"http://127.0.0.1:{port}"


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
IDS = [f"{op.method.upper()} {op.path}" for op in OPERATIONS]


def shorten_poll(case: Case) -> None:
    """A long poll of more than MAX_TEST_POLL_S: still valid, but a short wait."""
    timeout = (case.query or {}).get("timeout")
    if isinstance(timeout, str) and timeout.isdigit():
        timeout = int(timeout)  # coverage cases send query values as text
    if isinstance(timeout, int) and MAX_TEST_POLL_S < timeout <= MAX_POLL_TIMEOUT_S:
        case.query["timeout"] = MAX_TEST_POLL_S


def check(case: Case, base_url: str) -> None:
    """Send ``case`` and run every check on the answer."""
    shorten_poll(case)
    case.call_and_validate(
        base_url=base_url,
        excluded_checks=[positive_data_acceptance, not_a_server_error],
        additional_checks=[accepts_valid_requests, no_unforeseen_server_error],
    )


@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
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
    check(case, base_url)


@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_the_api_matches_its_document_at_its_edges(operation: Operation, base_url: str) -> None:
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(
            operation=operation, phase=TestPhase.COVERAGE.value
        ),
    )
    ran = 0
    for case in cases:
        check(case, base_url)
        ran += 1
        if ran >= MAX_COVERAGE_CASES:
            break
    assert ran > 0, "schemathesis made no coverage case"


@pytest.mark.slow  # about 10 s: each scenario is a few real HTTP calls
def test_chained_operations_match_the_document(base_url: str) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": base_url}

        def before_call(self, case: Case) -> None:
            shorten_poll(case)

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance, not_a_server_error],
                additional_checks=[accepts_valid_requests, no_unforeseen_server_error],
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    # What a link gives depends on the node's state, which every scenario
    # changes: Hypothesis then stops with FlakyStrategyDefinition, as in
    # schemathesis' own runner, after scenarios that all passed (a failed check
    # raises something else, which is not suppressed).
    with contextlib.suppress(FlakyStrategyDefinition):
        Workflow.run(
            settings=settings(
                max_examples=STATEFUL_SCENARIOS,
                stateful_step_count=STATEFUL_STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                # Each scenario changes the live node, so a replayed scenario draws
                # differently (Hypothesis calls that flaky): generate, never replay.
                phases=[Phase.generate],
                database=None,
            )
        )
