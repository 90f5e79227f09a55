"""The fake server's error bodies, in each format as the vendors document them, so the official
SDKs raise the same exception classes with the same codes as for the real APIs."""

from __future__ import annotations

from typing import Any

from providers.fake_server.formats import Format

# (status, openai (type, code, message), anthropic (type, message), gemini (status, message))
_ERRORS: dict[
    str, tuple[int, tuple[str, str | None, str], tuple[str, str], tuple[int, str, str]]
] = {
    "rate_limit": (
        429,
        (
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for {model} in organization "
            "org-fake on requests per min (RPM): Limit {limit}, Used {limit}, Requested 1. Please "
            "try again in {retry}s. Visit https://platform.openai.com/account/rate-limits to learn "
            "more.",
        ),
        (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization "
            "of {limit} requests per minute. Please try again later.",
        ),
        (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    ),
    "quota": (
        429,
        (
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        ("rate_limit_error", "You have reached your specified API usage limits (spend limit)."),
        (
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
    ),
    "server_error": (
        500,
        (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        ("api_error", "Internal server error"),
        (500, "INTERNAL", "An internal error has occurred. Please retry or report it."),
    ),
    "unavailable": (
        503,
        ("server_error", None, "Slow Down: the engine is currently overloaded."),
        ("api_error", "Service unavailable"),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ),
    "overloaded": (
        529,
        ("server_error", None, "The engine is currently overloaded, please try again later."),
        ("overloaded_error", "Overloaded"),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ),
    "timeout": (
        408,
        ("timeout", None, "Request timed out."),
        ("timeout_error", "Request timed out"),
        (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    ),
    "bad_request": (
        400,
        ("invalid_request_error", None, "{detail}"),
        ("invalid_request_error", "{detail}"),
        (400, "INVALID_ARGUMENT", "{detail}"),
    ),
    "auth": (
        401,
        (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided. You can find "
            "your API key at https://platform.openai.com/account/api-keys.",
        ),
        ("authentication_error", "invalid x-api-key"),
        (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    ),
    "not_found": (
        404,
        (
            "invalid_request_error",
            "model_not_found",
            "The model `{model}` does not exist or you do not have access to it.",
        ),
        ("not_found_error", "model: {model}"),
        (404, "NOT_FOUND", "models/{model} is not found for API version v1beta."),
    ),
    "context_length": (
        400,
        (
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context "
            "length is {window} tokens. However, your messages resulted in {tokens} tokens. "
            "Please reduce the length of the messages.",
        ),
        ("invalid_request_error", "prompt is too long: {tokens} tokens > {window} maximum"),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count ({tokens}) exceeds the maximum number "
            "of tokens allowed ({window}).",
        ),
    ),
}


def error_body(fmt: Format, kind: str, request_id: str, **info: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) of an error of `kind` in format `fmt`, with `info` filled into the text."""
    info.setdefault("detail", "Invalid request.")
    info.setdefault("model", "unknown")
    status, openai, anthropic, gemini = _ERRORS[kind]
    if fmt == "openai":
        kind_, code, message = openai
        param = "messages" if kind == "context_length" else None
        return status, {
            "error": {
                "message": message.format(**info),
                "type": kind_,
                "param": param,
                "code": code,
            }
        }
    if fmt == "anthropic":
        kind_, message = anthropic
        error: dict[str, Any] = {"type": kind_, "message": message.format(**info)}
        body: dict[str, Any] = {"type": "error", "error": error, "request_id": f"req_{request_id}"}
        if kind == "quota":
            error["details"] = {"error_code": "enforced_spend_limit_reached"}
        return (504 if kind == "timeout" else status), body  # Anthropic: 504 timeout_error
    gcode, gstatus, message = gemini
    details: list[dict[str, Any]] = []
    if kind == "rate_limit":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{info.get('retry', 1)}s",
            }
        )
    if kind == "auth":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        )
    error = {"code": gcode, "message": message.format(**info), "status": gstatus}
    if details:
        error["details"] = details
    return gcode, {"error": error}
