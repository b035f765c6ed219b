"""How workflows call activities: through their typed references (`activities.contracts`).

    result = await call(SEND_EMAIL, SendEmailRequest(...), start_to_close_timeout=...)

`call_local` runs one as a local activity: in the worker that runs the workflow task, recorded
as one marker event instead of three, with no round trip through the server's task queue —
for short database reads and writes the workflow needs before it goes on.

The reference fixes the request model and the result's type, so mypy rejects a wrong
request or a wrong use of the result, where a name and a separately passed result type
could disagree with each other and with the activity.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import ActivityRef
    from workflows.effects import EFFECT_RETRY

RequestT = TypeVar("RequestT", bound=BaseModel)
ResultT = TypeVar("ResultT")


async def call(
    ref: ActivityRef[RequestT, ResultT],
    request: RequestT,
    *,
    start_to_close_timeout: timedelta,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy = EFFECT_RETRY,
) -> ResultT:
    """Run the activity `ref` with `request`, each attempt bounded by the timeouts and
    retried by `retry_policy`; its result decoded into the reference's result type."""
    result: ResultT = await workflow.execute_activity(
        ref.name,
        request,
        result_type=ref.result_type,
        start_to_close_timeout=start_to_close_timeout,
        heartbeat_timeout=heartbeat_timeout,
        retry_policy=retry_policy,
    )
    return result


async def call_local(
    ref: ActivityRef[RequestT, ResultT],
    request: RequestT,
    *,
    start_to_close_timeout: timedelta,
    retry_policy: RetryPolicy = EFFECT_RETRY,
) -> ResultT:
    """Run the activity `ref` as a local activity (same typing and retries as `call`)."""
    result: ResultT = await workflow.execute_local_activity(
        ref.name,
        request,
        result_type=ref.result_type,
        start_to_close_timeout=start_to_close_timeout,
        retry_policy=retry_policy,
    )
    return result
