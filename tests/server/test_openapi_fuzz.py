"""schemathesis over the server's own /openapi.json: every operation, open and with tokens required, over both
stores. No answer may be a 5xx, and every answer must match the schema the API declares."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

import stepline
from stepline.server.app import create_app
from stepline.server.auth import AuthStore

schemathesis = pytest.importorskip("schemathesis")
pytestmark = pytest.mark.slow
EXAMPLES = 40  # per operation: bounded, so the suite stays quick; the note gives the totals


@pytest.mark.parametrize("require_token", [False, True], ids=["open", "require-token"])
def test_no_operation_answers_5xx_and_every_answer_matches_its_schema(served, logdir, require_token):
    run = stepline.init(project="p", name="r", dir=logdir, config={"lr": 0.1})
    for step in range(50):
        run.log({"loss": 1 / (step + 1)}, step=step)
    run.info("hello")
    run.files.save(b"x", "a.txt")
    run.finish()
    served.land()
    auth = AuthStore(served.store.accounts())
    headers = {}
    if require_token:
        auth.add_user("ana")
        headers = {"Authorization": f"Bearer {auth.create_token('ana')[1]}", "X-Trackio-Write-Token": "x"}
    app = create_app(served.store, auth=auth, require_token=require_token)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]
    calls, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case):
            nonlocal calls
            calls += 1
            response = case.call(headers=headers)
            try:
                case.validate_response(response, checks=checks)
            except Exception as err:  # collected, so one run reports every operation that fails
                failures.append(f"{case.operation.label}: {str(err)[:500]}")

        call()
    print(f"{calls} requests over {len(list(schema.get_all_operations()))} operations "
          f"({'tokens required' if require_token else 'open'}, {served.kind}): {len(failures)} failures")
    assert not failures, "\n".join(sorted(set(failures))[:20])
