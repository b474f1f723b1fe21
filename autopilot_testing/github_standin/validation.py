"""Every request and response checked against GitHub's REST description (openapi-core)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

API_PREFIX = "/api/v3"
DEFAULT_SPEC = Path(__file__).with_name("github-rest.trimmed.json")


@dataclass
class Req:
    """openapi-core's Request protocol over what the handler read."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters

    @classmethod
    def of(
        cls, host_url: str, path: str, method: str, body: bytes, headers: dict[str, str],
        query: dict[str, list[str]], path_params: dict[str, str],
    ) -> Req:  # fmt: skip
        parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=Headers(headers),
            cookie=ImmutableMultiDict(),
            path=path_params,
        )
        content_type = headers.get("content-type", "application/json").split(";")[0]
        return cls(host_url, path, method.lower(), body or None, content_type, parameters)


@dataclass
class Resp:
    status_code: int
    data: bytes | None
    content_type: str = "application/json"
    headers: Headers = field(default_factory=Headers)


class Validator:
    def __init__(self, spec_path: Path) -> None:
        self._openapi = _load(spec_path)

    def request(self, req: Req) -> str | None:
        """Why the request breaks the description, or None."""
        try:
            self._openapi.validate_request(req)
        except Exception as error:  # openapi-core raises a family of errors; all are findings
            return _describe(error)
        return None

    def response(self, req: Req, resp: Resp) -> str | None:
        try:
            self._openapi.validate_response(req, resp)
        except Exception as error:
            return _describe(error)
        return None


@functools.cache
def _load(spec_path: Path) -> OpenAPI:
    """Loaded once per process (a couple of seconds): the server is a relative /api/v3, so
    one copy serves every stand-in whatever its port."""
    document: dict[str, Any] = json.loads(spec_path.read_text())
    document["servers"] = [{"url": API_PREFIX}]
    return OpenAPI.from_dict(document)


def _describe(error: BaseException) -> str:
    parts = [f"{type(error).__name__}: {error}"]
    for inner in getattr(error, "schema_errors", None) or []:
        parts.append(str(getattr(inner, "message", inner)))
    cause = error.__cause__
    if cause is not None:
        parts.append(_describe(cause))
    return "; ".join(parts)
