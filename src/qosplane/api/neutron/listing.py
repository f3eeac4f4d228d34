"""Neutron's list query parameters, for every collection: filters, `fields`, sorting and
pagination (neutron/api/v2/base.py `index`, neutron/api/api_common.py `get_filters`,
`get_sorts`, `get_limit_and_marker`, `get_pagination_links`).

Applied to the rendered resources the caller may see (policy checks come first, in the
handler), so a filter can narrow a listing and never widen it. Upstream's semantics:
- any attribute is a filter; a repeated parameter matches any of its values; `tenant_id`
  and `project_id` are the same filter; a boolean matches `true`/`false` in any case;
- an unknown attribute is a 400 (the `filter-validation` extension, on by default); the
  attributes are those of the rendered resources, so on an empty listing nothing is
  checked (the answer is empty either way);
- `fields` (repeatable) keeps only those attributes;
- `sort_key`/`sort_dir` pairs sort, `asc` unless said; an unknown key is a 400;
- `limit` and `marker` page through the collection sorted by the sort keys, then `id`,
  with a `<collection>_links` `next` (and `previous`) link as Neutron writes them; a
  marker the caller cannot see is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from qosplane.model.errors import INT32_MAX, InvalidInput, parse_int

PAGING = ("limit", "marker", "page_reverse")
SORTING = ("sort_key", "sort_dir")
RESERVED = ("fields", *PAGING, *SORTING)
ALIASES = {"tenant_id": "project_id"}


def _matches(value: object, wanted: Sequence[str]) -> bool:
    if isinstance(value, bool):
        return any(w.lower() == str(value).lower() for w in wanted)
    if isinstance(value, list):
        return any(str(v) in wanted for v in value)
    return ("" if value is None else str(value)) in wanted or (value is None and "None" in wanted)


def _filtered(
    request: Request, items: list[dict[str, Any]], attributes: frozenset[str]
) -> list[dict[str, Any]]:
    for key in {k for k in request.query_params if k not in RESERVED}:
        attribute = ALIASES.get(key, key)
        if items and attribute not in attributes:
            raise InvalidInput(
                key,
                request.query_params[key],
                "an attribute of the resource",
                f"{key} is an invalid attribute for filtering",
            )
        wanted = request.query_params.getlist(key)
        items = [i for i in items if _matches(i.get(attribute), wanted)]
    return items


def _sorts(request: Request, attributes: frozenset[str]) -> list[tuple[str, bool]]:
    keys = request.query_params.getlist("sort_key")
    dirs = request.query_params.getlist("sort_dir")
    if len(dirs) > len(keys):
        raise InvalidInput("sort_dir", dirs, "one sort_dir per sort_key")
    out = []
    for i, key in enumerate(keys):
        if attributes and key not in attributes:
            raise InvalidInput("sort_key", key, "an attribute of the resource")
        direction = dirs[i] if i < len(dirs) else "asc"
        if direction not in ("asc", "desc"):
            raise InvalidInput("sort_dir", direction, "asc or desc")
        out.append((key, direction == "desc"))
    return out


def _sort_value(value: object) -> tuple[int, str]:
    return (0, "") if value is None else (1, str(value))


def _sorted(items: list[dict[str, Any]], sorts: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    for key, descending in reversed(sorts):  # stable: the first key sorts last
        items = sorted(items, key=lambda i: _sort_value(i.get(key)), reverse=descending)
    return items


def _link(request: Request, rel: str, marker: str | None, reverse: bool) -> dict[str, str]:
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in PAGING[1:]]
    query += ([("marker", marker)] if marker is not None else []) + (
        [("page_reverse", "True")] if reverse else []
    )
    return {"rel": rel, "href": f"{str(request.url).split('?')[0]}?{urlencode(query)}"}


def _page(
    request: Request, collection: str, items: list[dict[str, Any]], body: dict[str, Any]
) -> list[dict[str, Any]]:
    q = request.query_params
    limit = parse_int("limit", q["limit"], 0, INT32_MAX) if "limit" in q else 0
    marker = q.get("marker")
    reverse = q.get("page_reverse", "false").lower() == "true"
    ordered = list(reversed(items)) if reverse else items
    start = 0
    ids = [i.get("id") for i in ordered]
    if marker is not None and marker in ids:
        start = ids.index(marker) + 1
    # A marker the caller cannot see (or that is gone) is ignored, as in Neutron, whose
    # pager looks the marker up with the caller's context and gets none
    # (neutron/objects/base.py Pager.to_kwargs): paging starts from the beginning.
    page = ordered[start : start + limit] if limit else ordered[start:]
    shown = list(reversed(page)) if reverse else page
    # neutron/api/api_common.py get_pagination_links: a full page always has a `next` (the
    # page after it may be empty, and has none); `previous` is there unless a short page
    # was asked for backwards. Markers are the first and last items shown.
    links = []
    if limit and not (len(shown) < limit and not reverse):
        links.append(_link(request, "next", shown[-1]["id"] if shown else None, False))
    if limit and not (len(shown) < limit and reverse):
        links.append(_link(request, "previous", shown[0]["id"] if shown else None, True))
    if links:
        body[f"{collection}_links"] = links
    return shown


def neutron_list(request: Request, collection: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a Neutron list response for `items` (the caller's visible resources,
    each as its show body renders it)."""
    attributes = frozenset(k for i in items for k in i)
    chosen = _filtered(request, items, attributes)
    sorts = _sorts(request, attributes)
    if sorts or "limit" in request.query_params or "marker" in request.query_params:
        chosen = _sorted(chosen, [*sorts, ("id", sorts[0][1] if sorts else False)])
    body: dict[str, Any] = {}
    chosen = _page(request, collection, chosen, body)
    fields = request.query_params.getlist("fields")
    if fields:
        chosen = [{k: v for k, v in i.items() if k in fields} for i in chosen]
    body[collection] = chosen
    return body
