"""The OpenAPI document, completed with what Litestar cannot infer from the handlers.

* Every error is an RFC 9457 problem (``application/problem+json``, ``invite.kernel.problems``):
  each operation documents ``4XX`` and ``5XX`` as ProblemDetails, and Litestar's own 400
  shape (``status_code``/``detail``/``extra``), which this API never sends, is dropped.
* A request body struct that refuses unknown fields says so (``additionalProperties: false``).

``ApiDocumentConfig`` is the app's OpenAPIConfig; the document is built once, on first use.
Its page, ``DOCS_PATH``, is Swagger UI with every asset served by this app from the
swagger-ui-bundle package (``DOCS_PATH/assets``): the page works without the internet.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import msgspec
from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import OpenAPI
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
_ASSETS = "/assets"  # under DOCS_PATH

PROBLEM_MEDIA_TYPE = "application/problem+json"
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; extension members may follow.",
    "required": ["title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "invalid-params": {
            "type": "array",
            "description": "The fields at fault, as JSON paths into the request, and why.",
            "items": {
                "type": "object",
                "required": ["name", "reason"],
                "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_CLIENT_ERROR = (
    "The request cannot be served as sent: 400 unreadable body, 401 no valid bearer token, 404 not "
    "found (also another tenant's resource), 405, 409 not allowed in the resource's state, 413 too "
    "large, 415 unsupported file, 422 invalid (invalid-params names each field)."
)
_SERVER_ERROR = (
    "503 the database or a service this one depends on is unavailable (retry after Retry-After "
    "seconds), 502 a neighbouring service failed, 500 an error on our side."
)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }


def _strict_structs() -> dict[str, type[msgspec.Struct]]:
    """Struct classes by name that refuse unknown fields (Litestar names components after them)."""
    found: dict[str, type[msgspec.Struct]] = {}
    pending: list[type[msgspec.Struct]] = list(msgspec.Struct.__subclasses__())
    while pending:
        struct = pending.pop()
        pending.extend(struct.__subclasses__())
        if struct.__struct_config__.forbid_unknown_fields:
            found[struct.__name__] = struct
    return found


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (an OpenAPI dict from Litestar) with problem responses and strict bodies."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ProblemDetails"] = PROBLEM_SCHEMA
    for name in _strict_structs().keys() & schemas.keys():
        schemas[name]["additionalProperties"] = False
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("400", None)
            responses["4XX"] = _problem(_CLIENT_ERROR)
            responses["5XX"] = _problem(_SERVER_ERROR)
    return document


@dataclass
class ApiDocument(OpenAPI):
    def to_schema(self) -> dict[str, Any]:
        return complete(super().to_schema())


class ApiDocumentConfig(OpenAPIConfig):
    def to_openapi_schema(self) -> OpenAPI:
        base = super().to_openapi_schema()
        return ApiDocument(**{f.name: getattr(base, f.name) for f in fields(base)})


class LocalSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI at ``DOCS_PATH``, its scripts, styles and icon served from ``DOCS_PATH/assets``."""

    def __init__(self) -> None:
        assets = DOCS_PATH + _ASSETS
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
            path="/",
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=_ASSETS,
                directories=[str(swagger_ui_path)],
                name="docs-assets",
                cache_control=CacheControlHeader(max_age=86_400),  # versioned with the package
            )
        )


def docs_config(**kwargs: Any) -> ApiDocumentConfig:
    """The app's OpenAPIConfig: the document at ``DOCS_PATH/openapi.json``, the page at ``DOCS_PATH``."""
    return ApiDocumentConfig(
        path=DOCS_PATH, render_plugins=[LocalSwaggerRenderPlugin(), JsonRenderPlugin()], **kwargs
    )
