"""The OpenAPI contract, fuzzed: schemathesis cases against the real app over the real index.

Every operation of /openapi.json gets valid (positive) and invalid (negative) cases, most of them
`POST /v1/ask`, the one that does work. Each response must not be a 5xx, must match the documented
status, content type and schema, and every error must be in the one error shape.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import CustomFailure

from ragbot.api.app import create_app
from ragbot.api.schemas import QUESTION_PATTERN
from ragbot.errors import InvalidQuestion
from ragbot.pipeline import validate_question

# Cases per (operation, mode): an upper bound, Hypothesis stops early when an operation's input
# space is small (GET /healthz has a single valid request). The total must pass MIN_CASES.
ASK_CASES = {GenerationMode.POSITIVE: 500, GenerationMode.NEGATIVE: 500}
OTHER_CASES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 50}
MIN_CASES = 1_000


def pipeline_accepts(question: str) -> bool:
    try:
        validate_question(question, max_chars=1_000)
    except InvalidQuestion:
        return False
    return True


# Whitespace, controls and their neighbours, so that the property below meets the edges often.
EDGE_CHARS = (
    "".join(
        chr(c) for c in [*range(0x00, 0x22), *range(0x7E, 0xA2), 0x1680, *range(0x2000, 0x2030)]
    )
    + "\u205f\u3000\ufeff a"
)


@hypothesis_settings(max_examples=2_000, deadline=None, derandomize=True, database=None)
# Unicode text only: a lone surrogate (a JSON "\\ud800" escape) is no text, and the pipeline
# refuses it (invalid_question), which no JSON Schema pattern can say.
@given(st.text(alphabet=st.sampled_from(EDGE_CHARS) | st.characters(codec="utf-8"), max_size=12))
def test_documented_question_pattern_accepts_exactly_what_the_pipeline_accepts(
    question: str,
) -> None:
    assert bool(re.match(QUESTION_PATTERN, question)) == pipeline_accepts(question)


def test_documented_question_pattern_agrees_with_the_pipeline_on_every_single_character() -> None:
    pattern = re.compile(QUESTION_PATTERN)
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # lone surrogates cannot be sent as UTF-8 JSON text
        for question in (chr(code), f"a{chr(code)}a"):
            assert bool(pattern.match(question)) == pipeline_accepts(question), hex(code)


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx body is {"error": {"code", "message", "request_id"}}, strings all."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    fields = ("code", "message", "request_id")
    if not isinstance(error, dict) or not all(isinstance(error.get(f), str) for f in fields):
        raise CustomFailure(
            operation=case.operation.label,
            title="Error outside the one error shape",
            message=f"{response.status_code}: {response.text[:300]!r}",
            case=case,
            response=response,
        )
    return None


def run_cases(operation: Any, mode: GenerationMode, max_examples: int, ran: Counter[str]) -> None:
    """Send up to `max_examples` cases of one operation and mode; count them in `ran`."""
    label = f"{operation.label} {mode.value}"

    @hypothesis_settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        ran[label] += 1
        case.call_and_validate(additional_checks=[error_shape])

    run()


def test_schemathesis_finds_no_5xx_and_no_contract_violation(
    real_settings: Any, real_pipeline: Any
) -> None:
    app = create_app(real_settings, real_pipeline)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # A body past RAGBOT_MAX_BODY_BYTES is refused with 413 before its schema is read: a
    # rejection too (README: errors).
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]  # a copy: not the default
    ran: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        budget = ASK_CASES if operation.label == "POST /v1/ask" else OTHER_CASES
        raw = operation.definition.raw
        for mode, max_examples in budget.items():
            if mode is GenerationMode.NEGATIVE and not (
                raw.get("parameters") or raw.get("requestBody")
            ):
                continue  # no input to get wrong (GET /healthz)
            run_cases(operation, mode, max_examples, ran)
    total = sum(ran.values())
    print(
        f"\nschemathesis: {total} cases, 0 failures: "
        + ", ".join(f"{k} {v}" for k, v in ran.items())
    )
    assert total >= MIN_CASES, ran
