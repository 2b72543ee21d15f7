"""HTTP adapter: the signed web hook. Thin: verify, then hand to the intake use case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.vacancies import intake, repository
from shared.catalogue import ODS_PATTERN
from shared.http.problems import PROBLEM_JSON, Problem
from shared.runtime import Runtime

router = APIRouter()


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.post(
    "/webhooks/{ods_code}",
    summary="Post a vacant session (Standard Webhooks signed)",
    status_code=202,
    responses={
        200: {"description": "That external_id was already posted: the same session."},
        401: {"description": "Unknown organisation, missing, wrong or stale signature."},
        403: {"description": "The organisation is deactivated."},
        422: {"description": "Invalid fields, as RFC 9457 problem+json naming each."},
    },
)
async def post_webhook(
    request: Request,
    ods_code: Annotated[str, Path(pattern=ODS_PATTERN, description="Your ODS code.")],
    _doc_body: Annotated[
        intake.SessionPostedHook | None, Body(include_in_schema=True, description="Delivery.")
    ] = None,
) -> JSONResponse:
    """Verify the delivery's signature, then store and publish the session once."""
    runtime = _runtime(request)
    raw = await request.body()
    found = await repository.organisation_with_secret(runtime.pool, ods_code)
    if found is None:
        # Unknown and wrongly signed look the same: nothing to learn by probing.
        raise Problem(401, "Signature could not be verified.")
    organisation, secret = found
    try:
        Webhook(secret).verify(raw, dict(request.headers))
    except WebhookVerificationError as exc:
        raise Problem(401, f"Signature could not be verified: {exc}.") from exc
    if not organisation.active:
        raise Problem(403, "This organisation is deactivated and may not post sessions.")
    webhook_id = request.headers["webhook-id"]
    async with runtime.pool.acquire() as conn, conn.transaction():
        prior = await repository.claim_receipt(conn, organisation=ods_code, webhook_id=webhook_id)
        if prior is not None:
            status, body = prior
        else:
            status, body = await intake.receive(
                conn, organisation=organisation, body=raw, emitter=runtime.emitter
            )
            await repository.save_receipt(
                conn,
                organisation=ods_code,
                webhook_id=webhook_id,
                status_code=status,
                response=body,
            )
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media)
