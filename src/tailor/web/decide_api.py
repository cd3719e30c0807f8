"""``POST /api/v1/decide``: the clinician's decision tool as JSON (clinician, statistician,
admin). Bad input is a 422 listing every field's problem; no model configured is a 409."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from tailor.db import Database
from tailor.services.context import RequestContext
from tailor.services.decide import DecisionInputError
from tailor.services.decide import decide as decide_service
from tailor.web.api import ERR, context, get_db, no_unknown_query

__all__ = ["DecideIn", "router"]

router = APIRouter(prefix="/api/v1", tags=["decision tool"],
                   dependencies=[Depends(no_unknown_query)], responses={
    401: ERR, 403: ERR, 404: ERR, 409: ERR, 422: ERR, 429: ERR, 503: ERR})

Items = dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")],
             Annotated[StrictInt, Field(ge=-1000, le=1000)] | None]


class DecideIn(BaseModel):
    """Either ``scores`` (the model's features) or ``questionnaires`` with ``peg`` items and
    ``opioid_use``; plus ``contraindications`` (``ARM:id``) or ``eligible_arms``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    scores: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")],
                 float | StrictBool | None] | None = Field(default=None, max_length=64)
    questionnaires: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")], Items] | None = \
        Field(default=None, max_length=16)
    peg: Items | None = None
    opioid_use: StrictBool | None = None
    age: Annotated[float, Field(ge=0, le=130)] | None = None
    contraindications: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_:]{1,64}$")]] = Field(
        default=[], max_length=50)
    eligible_arms: list[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,31}$")]] | None = \
        Field(default=None, max_length=20)


@router.post("/decide")
def decide(body: DecideIn, request: Request, db: Annotated[Database, Depends(get_db)],
           ctx: Annotated[RequestContext, Depends(context)]) -> Any:
    """Recommended first treatment, week-12 plan, predicted response with intervals, and why."""
    path = str(request.app.state.settings.regime_model or "")
    scores = None if body.scores is None else {
        k: (int(v) if isinstance(v, bool) else v) for k, v in body.scores.items()}
    try:
        return asdict(decide_service(db, ctx, path, scores=scores,
                                     questionnaires=body.questionnaires, peg=body.peg,
                                     opioid_use=body.opioid_use, age=body.age,
                                     contraindications=body.contraindications,
                                     eligible_arms=body.eligible_arms))
    except DecisionInputError as exc:
        return JSONResponse({"detail": [{"loc": ["body", *k.split(".")], "msg": v,
                                         "type": "invalid"} for k, v in exc.errors.items()]},
                            status_code=422)
