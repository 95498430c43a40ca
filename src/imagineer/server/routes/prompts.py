"""/v1/prompts/parse: check a prompt as the user types it, with the error's place in the text."""

from __future__ import annotations

from fastapi import APIRouter

from imagineer.prompts import PromptError, format_request, parse_all
from imagineer.server.deps import PrincipalDep
from imagineer.server.schemas import ParsedPrompt, PromptCheck, PromptParse, PromptProblem
from imagineer.service import UnsupportedRequest
from imagineer.service.plan import check_supported

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])


@router.post("/parse")
def parse_prompt(body: PromptParse, _principal: PrincipalDep) -> PromptCheck:
    """The requests a prompt makes, or why it cannot run: `200` either way, with `valid`.

    Only the prompt language is checked (the safety policy runs when a job is queued)."""
    try:
        requests = parse_all(body.prompt)
        parsed = [
            ParsedPrompt(
                canonical=format_request(request),
                request=request.to_dict(),
                warnings=check_supported(request),
            )
            for request in requests
        ]
    except PromptError as exc:
        problem = PromptProblem(
            code="prompt_error",
            message=exc.full_message,
            caret=str(exc),
            span=exc.span,
            token=exc.token,
            suggestion=exc.suggestion,
        )
        return PromptCheck(valid=False, requests=[], error=problem)
    except UnsupportedRequest as exc:
        problem = PromptProblem(
            code="unsupported_request",
            message=str(exc),
            caret=None,
            span=None,
            token=None,
            suggestion=None,
        )
        return PromptCheck(valid=False, requests=[], error=problem)
    return PromptCheck(valid=True, requests=parsed, error=None)
