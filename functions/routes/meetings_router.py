"""The ``/meetings`` router, shared by the meetings routes and the host controls (one concern, one
Lambda: functions/routes/meetings.py imports both). One router object, so its routes carry their full
paths (the infra makes API Gateway routes of them)."""

from __future__ import annotations

from fastapi import APIRouter

from functions.core.errors import error_responses

router = APIRouter(prefix="/meetings", tags=["meetings"], responses=error_responses(400, 401, 404, 422))
