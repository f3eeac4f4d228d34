"""Keystone's wire format, in one place: the attributes each resource knows, the JSON of
each resource, and the parsing of body fields with Keystone's rules
(keystone/resource/schema.py, keystone/identity/schema.py, keystone/assignment/schema.py,
keystone/common/validation/parameter_types.py)."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import QueryParams

from qosplane.model.errors import InvalidInput
from qosplane.store.identity import UNSET, Unset
from qosplane.store.views import GroupView, ProjectView, RoleView, UserView

# The attributes Keystone knows; any other in a body is kept in `extra` and shown back, as
# Keystone does.
PROJECT_ATTRIBUTES = (
    "id",
    "name",
    "description",
    "enabled",
    "domain_id",
    "parent_id",
    "is_domain",
    "tags",
    "options",
    "links",
)
DOMAIN_ATTRIBUTES = ("id", "name", "description", "enabled", "tags", "options", "links")
USER_ATTRIBUTES = (
    "id",
    "name",
    "password",
    "enabled",
    "domain_id",
    "default_project_id",
    "description",
    "email",
    "options",
    "federated",
    "links",
    "password_expires_at",
)
GROUP_ATTRIBUTES = ("id", "name", "domain_id", "description", "links")


def extra_attributes(body: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in known}


def json_object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """`parent[key]` as a JSON object ({} when absent); a 400 naming `path` otherwise."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(path, value, "a JSON object")
    return value


def tags(body: dict[str, Any], path: str) -> tuple[str, ...] | None:
    """parameter_types.tags: at most 80 unique strings of 1 to 255 characters, without
    '/' or ','."""
    if "tags" not in body:
        return None
    value = body["tags"]
    if (
        not isinstance(value, list)
        or len(value) > 80
        or len(set(map(str, value))) != len(value)
        or not all(
            isinstance(t, str) and 1 <= len(t) <= 255 and "/" not in t and "," not in t
            for t in value
        )
    ):
        raise InvalidInput(
            f"{path}.tags", value, "at most 80 unique strings of 1 to 255 characters, no / or ,"
        )
    return tuple(value)


def text(body: dict[str, Any], key: str, path: str, longest: int, shortest: int = 0) -> str | None:
    """`body[key]` as text of `shortest`..`longest` characters, None when absent."""
    value = body.get(key)
    if value is None and key not in body:
        return None
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        raise InvalidInput(path, value, f"a string of {shortest} to {longest} characters")
    return value


def required_name(body: dict[str, Any], path: str, longest: int) -> str:
    name = text(body, "name", f"{path}.name", longest, 1)
    if name is None:
        raise InvalidInput(
            f"{path}.name", None, f"a string of 1 to {longest} characters", "required"
        )
    return name


def flag(body: dict[str, Any], key: str, path: str) -> bool | None:
    """parameter_types.boolean: JSON true or false only."""
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, bool):
        raise InvalidInput(path, value, "true or false")
    return value


def optional_ref(body: dict[str, Any], key: str, path: str) -> str | Unset | None:
    """An id a body may name, or null; UNSET when it does not name the key at all."""
    if key not in body:
        return UNSET
    value = body[key]
    if value is not None and not isinstance(value, str):
        raise InvalidInput(path, value, "an id or null")
    return value


def query_flag(query: QueryParams, key: str) -> bool | None:
    """A boolean list filter (`?enabled=false`): Keystone's query_filter_is_true, where
    anything but 0/false/no is true; None when absent."""
    if key not in query:
        return None
    return query[key].lower() not in ("0", "false", "no")


def project_json(row: ProjectView) -> dict[str, Any]:
    extra: dict[str, Any] = json.loads(row.extra_json)
    return extra | {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        # A project acting as a domain has no domain of its own on the wire (null).
        "domain_id": None if row.is_domain else row.domain_id,
        "parent_id": row.parent_id,
        "is_domain": row.is_domain,
        "tags": json.loads(row.tags_json),
        "options": {},
        "links": {"self": f"/identity/v3/projects/{row.id}"},
    }


def domain_json(row: ProjectView) -> dict[str, Any]:
    extra: dict[str, Any] = json.loads(row.extra_json)
    return extra | {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        "tags": json.loads(row.tags_json),
        "options": {},
        "links": {"self": f"/identity/v3/domains/{row.id}"},
    }


def user_json(row: UserView) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(row.extra_json) | {
        "id": row.id,
        "name": row.name,
        "enabled": row.enabled,
        "domain_id": row.domain_id,
        "default_project_id": row.default_project_id,
        "description": row.description,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"/identity/v3/users/{row.id}"},
    }
    if row.email is not None:
        out["email"] = row.email
    return out


def group_json(row: GroupView) -> dict[str, Any]:
    extra: dict[str, Any] = json.loads(row.extra_json)
    return extra | {
        "id": row.id,
        "name": row.name,
        "domain_id": row.domain_id,
        "description": row.description,
        "links": {"self": f"/identity/v3/groups/{row.id}"},
    }


def role_json(row: RoleView) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "domain_id": row.domain_id,
        "description": row.description or None,
        "options": {},
        "links": {"self": f"/identity/v3/roles/{row.id}"},
    }


def role_ref(row: RoleView) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "links": {"self": f"/identity/v3/roles/{row.id}"}}
