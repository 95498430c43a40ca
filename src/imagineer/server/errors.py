"""The API's errors: one exception, one JSON shape (OpenAI's), and the service's errors mapped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from imagineer.engines.base import Cancelled
from imagineer.jobs import InvalidTransition, JobNotFound
from imagineer.prompts import PromptError
from imagineer.router import RoutingError
from imagineer.service import NotAnOutput, SafetyRefusal, UnsupportedRequest
from imagineer.service.styles import StyleRefused

OPENAI_PREFIX = "/v1/images"  # routes whose clients expect OpenAI's statuses (400, not 422/403)

_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An error answered as {"error": {"message", "type", "code", "param", …extra}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, "server_error" if self.status >= 500 else None)
        error = {
            "message": self.message,
            "type": kind or "invalid_request_error",
            "param": self.param,
            "code": self.code,
            **self.extra,
        }
        return {"error": jsonable_encoder(error)}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def from_service_error(exc: Exception, *, openai: bool) -> ApiError:
    """The API error for an error the service layer raised (OpenAI routes answer 400 for all
    request problems, as OpenAI does)."""
    bad = 400 if openai else 422
    if isinstance(exc, PromptError):
        extra = {"span": list(exc.span), "token": exc.token, "suggestion": exc.suggestion}
        return ApiError(bad, str(exc), code="prompt_error", param="prompt", extra=extra)
    if isinstance(exc, SafetyRefusal):
        extra = {"category": exc.category, "reason": exc.reason}
        message = f"refused ({exc.category}): {exc.reason}"
        status = 400 if openai else 403
        return ApiError(status, message, code="content_policy_violation", extra=extra)
    if isinstance(exc, JobNotFound):
        return ApiError(404, str(exc), code="job_not_found")
    if isinstance(exc, InvalidTransition):
        extra = {"state": exc.current}
        return ApiError(409, str(exc), code="invalid_state", extra=extra)
    if isinstance(exc, StyleRefused):
        return ApiError(bad, str(exc), code="sref_refused", param="prompt")
    if isinstance(exc, UnsupportedRequest | NotAnOutput):
        return ApiError(bad, str(exc), code="unsupported_request")
    if isinstance(exc, RoutingError):
        return ApiError(bad, str(exc), code="model_not_available", param="model")
    if isinstance(exc, Cancelled):
        return ApiError(409, str(exc), code="cancelled")
    if isinstance(exc, ValueError):  # the typed requests' own checks name the bad value
        return ApiError(bad, str(exc), code="invalid_value")
    raise TypeError(f"no API error for {type(exc).__name__}") from exc


def is_openai(request: Request) -> bool:
    return request.url.path.startswith(OPENAI_PREFIX)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return exc.response()


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    return from_service_error(exc, openai=is_openai(request)).response()


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return ApiError(exc.status_code, str(exc.detail), headers=headers).response()


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    first = errors[0] if errors else {}
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "form")]
    param = ".".join(where) or None
    message = f"{param}: {first.get('msg', 'invalid')}" if param else first.get("msg", "invalid")
    status = 400 if is_openai(request) else 422
    error = ApiError(status, message, code="invalid_value", param=param, extra={"errors": errors})
    return error.response()


def install_handlers(app: FastAPI) -> None:
    """Answer every error, ours and the framework's, in the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for kind in (
        PromptError,
        SafetyRefusal,
        JobNotFound,
        InvalidTransition,
        UnsupportedRequest,
        NotAnOutput,
        RoutingError,
        Cancelled,
        ValueError,
    ):
        app.add_exception_handler(kind, _service_error)
