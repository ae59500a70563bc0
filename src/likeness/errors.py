"""The error tree. Every error says its HTTP status and whether retrying can help.

LikenessError
├── ApiError (status, message) ........ rendered by app.py as Tavus bodies
│   ├── BadRequest (400)
│   ├── Unauthorized (401) ........... {"message": "Invalid access token"}
│   └── NotFound (404)
├── TrainingFailure (failure_type) .... permanent: a bad training video; maps to one
│                                        Tavus error_message (training/failures.py)
└── RetryableError .................... network/provider trouble; retry with backoff
"""

from __future__ import annotations

from typing import Any


class LikenessError(Exception):
    retryable: bool = False


class ApiError(LikenessError):
    status_code: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "message": self.message}


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("Invalid access token")

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


class NotFound(ApiError):
    status_code = 404


class TrainingFailure(LikenessError):
    """A permanent training failure: the input is at fault, retrying cannot help."""

    def __init__(self, failure_type: str, detail: str) -> None:
        super().__init__(f"{failure_type}: {detail}")
        self.failure_type = failure_type
        self.detail = detail


class RetryableError(LikenessError):
    retryable = True
