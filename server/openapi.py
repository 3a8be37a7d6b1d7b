"""`GET /openapi.json`: an OpenAPI 3.0 description of every route the server answers.

Written by hand from the handlers (the app has no schema framework to derive it from); the test
suite fuzzes the running server from it (schemathesis), so a route or a status that drifts from
this description fails there.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version as package_version
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feedrank.server.events import MAX_EVENTS
from feedrank.server.posts import MAX_POSTS

JSON = "application/json"


def error_body(description: str) -> dict:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def json_body(description: str, schema: dict) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _empty(description: str) -> dict:
    return {"description": description}


ERRORS = {
    "400": error_body("malformed request"),
    "404": error_body("no such model or version"),
    "413": error_body("body over server.max_body_bytes"),
    "415": error_body("unsupported Content-Encoding"),
}
ADMIN_ERRORS = {
    **ERRORS,
    "401": error_body("missing or wrong bearer token"),
    "403": error_body("model control disabled (no server.admin_token)"),
}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


def _model_routes() -> dict:
    metadata = {
        "get": {
            "summary": "Model metadata (KServe v2)",
            "responses": {
                "200": json_body(
                    "name, versions, platform, inputs, outputs, and parameters.ranker: the "
                    "backend that ranks the feed with this model",
                    {"$ref": "#/components/schemas/ModelMetadata"},
                ),
                **ERRORS,
            },
        }
    }
    ready = {
        "get": {
            "summary": "Model readiness (KServe v2)",
            "responses": {
                "200": _empty("loaded"),
                "400": _empty("not loaded, or an invalid version"),
            },
        }
    }
    infer = {
        "post": {
            "summary": "Inference (KServe v2, JSON or Triton's binary tensor extension)",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
            },
            "responses": {
                "200": json_body("outputs", {"$ref": "#/components/schemas/InferenceResponse"}),
                **ERRORS,
                "500": error_body("the backend failed on valid input"),
            },
        }
    }
    routes = {}
    for base, parameters in (
        ("/v2/models/{name}", [NAME]),
        ("/v2/models/{name}/versions/{version}", [NAME, VERSION]),
    ):
        for tail, operation in (("", metadata), ("/ready", ready), ("/infer", infer)):
            routes[base + tail] = {"parameters": parameters, **operation}
    return routes


def _batch(
    summary: str,
    key: str,
    item: dict,
    most: int,
    accepted: dict,
    token: str,
    unavailable: str,
) -> dict:
    """A POST of a batch validated whole: a JSON array of items, or an object with one under
    `key`."""
    items = {"type": "array", "items": item, "minItems": 1, "maxItems": most}
    return {
        "post": {
            "summary": summary,
            "security": [{}, {"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "oneOf": [
                                items,
                                {"type": "object", "required": [key], "properties": {key: items}},
                            ]
                        }
                    }
                },
            },
            "responses": {
                "200": json_body("accepted", {"type": "object", "properties": accepted}),
                "401": error_body(f"server.{token} is set and the bearer token is wrong"),
                "413": ERRORS["413"],
                "415": ERRORS["415"],
                "422": json_body(
                    f"invalid {key}, each field named",
                    {"$ref": "#/components/schemas/FieldErrors"},
                ),
                "503": error_body(unavailable),
            },
        }
    }


def _admin(summary: str, body: dict, responses: dict) -> dict:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": False, "content": {JSON: {"schema": body}}},
            "responses": {**responses, **ADMIN_ERRORS},
        }
    }


def description(pages: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document; `pages`: the path items of the pages added to the app."""
    event = {
        "type": "object",
        "required": ["user_id", "post_id", "action", "timestamp"],
        "additionalProperties": False,
        "properties": {
            "user_id": {"type": "integer", "minimum": 0},
            "post_id": {"type": "integer", "minimum": 0},
            "action": {"type": "string", "enum": ["view", "like"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "target": {"type": "integer", "enum": [0, 1]},
        },
    }
    post = {
        "type": "object",
        "required": ["post_id", "text", "topic"],
        "additionalProperties": False,
        "properties": {
            "post_id": {"type": "integer", "minimum": 0},
            "text": {"type": "string", "minLength": 1},
            "topic": {"type": "string"},
        },
    }
    versions = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"model": {"type": "string"}, "version": {"type": "integer"}},
        },
    }
    parameters = {"type": "object", "additionalProperties": True}
    paths: dict[str, Any] = {
        "/post/recommendations/": {
            "get": {
                "summary": "The feed: top posts for a user at a time, and the experiment group",
                "parameters": [
                    {
                        "name": "id",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                    },
                    {
                        "name": "time",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
                    },
                ],
                "responses": {
                    "200": json_body("ranked posts", {"$ref": "#/components/schemas/Feed"}),
                    "422": json_body(
                        "invalid query parameters, each named",
                        {"$ref": "#/components/schemas/FieldErrors"},
                    ),
                    "503": error_body(
                        "the group's model version is not loaded, or the exposure log "
                        "cannot be written"
                    ),
                },
            }
        },
        "/feed/events": _batch(
            "What users saw and liked, as feed_data rows (validated whole)",
            "events",
            event,
            MAX_EVENTS,
            {"accepted": {"type": "integer"}, "likes": {"type": "integer"}},
            "events_token",
            "the events log cannot be written, or live likes are full",
        ),
        "/posts": _batch(
            "New posts, as post_text_df rows (validated whole): candidates of every feed "
            "requested after the answer",
            "posts",
            post,
            MAX_POSTS,
            {
                "accepted": {"type": "integer"},
                "post_ids": {"type": "array", "items": {"type": "integer"}},
                "versions": versions,
                "refused_by": {"type": "array", "items": {"type": "object"}},
                "seconds": {"type": "number"},
            },
            "posts_token",
            "the posts log cannot be written",
        ),
        "/posts/{post_id}": {
            "get": {
                "summary": "A post of the catalogue or posted since, and the versions ranking it",
                "parameters": [
                    {
                        "name": "post_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "responses": {
                    "200": json_body(
                        "the post",
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "text": {"type": "string"},
                                "topic": {"type": "string"},
                                "posted_at": {"type": ["string", "null"]},
                                "versions": versions,
                            },
                        },
                    ),
                    "404": error_body("no such post"),
                    "422": json_body(
                        "the id is not a non-negative integer",
                        {"$ref": "#/components/schemas/FieldErrors"},
                    ),
                },
            }
        },
        "/router": {
            "get": {
                "summary": "The router config in force",
                "responses": {
                    "200": json_body(
                        "salt, groups with buckets, model and version", {"type": "object"}
                    )
                },
            }
        },
        "/v2/health/live": {"get": {"summary": "Liveness", "responses": {"200": _empty("alive")}}},
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness",
                "responses": {
                    "200": _empty("every model serving and every routed version loaded"),
                    "400": _empty("not ready"),
                },
            }
        },
        "/v2": {
            "get": {
                "summary": "Server metadata",
                "responses": {"200": json_body("name, version, extensions", {"type": "object"})},
            }
        },
        **_model_routes(),
        "/v2/repository/index": _admin(
            "Repository index (Triton's repository extension)",
            {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            {
                "200": json_body(
                    "one entry per model version", {"type": "array", "items": {"type": "object"}}
                )
            },
        ),
        "/v2/repository/models/{name}/load": {
            "parameters": [NAME],
            **_admin(
                "Load or reload a model per its version_policy",
                {"type": "object", "properties": {"parameters": parameters}},
                {"200": _empty("loaded"), "501": error_body("config or file overrides")},
            ),
        },
        "/v2/repository/models/{name}/unload": {
            "parameters": [NAME],
            **_admin(
                "Unload every version of a model",
                {"type": "object", "properties": {"parameters": parameters}},
                {
                    "200": _empty("unloaded"),
                    "409": error_body(
                        "the router sends a group to it (force with parameters.force)"
                    ),
                    "501": error_body("config or file overrides"),
                },
            ),
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This description",
                "responses": {"200": json_body("OpenAPI 3.0", {"type": "object"})},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "feedrank",
            "version": package_version("feedrank"),
            "description": "Feed recommendations for A/B experiments, served by a "
            "KServe v2 model server.",
        },
        "paths": paths | dict(pages or {}),
        "components": _components(),
    }


def _components() -> dict:
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {}},
        },
    }
    return {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "FieldErrors": {
                "type": "object",
                "required": ["error", "fields"],
                "properties": {
                    "error": {"type": "string"},
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "problem": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "Feed": {
                "type": "object",
                "required": ["exp_group", "recommendations"],
                "properties": {
                    "exp_group": {"type": "string"},
                    "recommendations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "text", "topic"],
                            "properties": {
                                "id": {"type": "integer"},
                                "text": {"type": "string"},
                                "topic": {"type": "string"},
                            },
                        },
                    },
                    "model": {"type": "string"},
                    "version": {"type": "integer"},
                    "request_id": {"type": "string"},
                    "fallback": {"type": "boolean"},
                    "candidates": {"type": "integer"},
                    "time": {"type": "string"},
                },
            },
            "ModelMetadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": {"type": "object"}},
                    "outputs": {"type": "array", "items": {"type": "object"}},
                    "parameters": {
                        "type": "object",
                        "properties": {"ranker": {"type": "string"}},
                    },
                },
            },
            "InferenceRequest": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": tensor},
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
                },
            },
            "InferenceResponse": {
                "type": "object",
                "properties": {
                    "model_name": {"type": "string"},
                    "model_version": {"type": "string"},
                    "id": {"type": "string"},
                    "outputs": {"type": "array", "items": tensor},
                },
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(description(request.app.state.openapi_pages))
