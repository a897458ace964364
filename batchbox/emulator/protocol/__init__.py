"""The emulator's HTTP edge, without state: SharedKey auth, api-version, request ids, OData, Batch-shaped responses.

Modules:
    auth        SharedKey verification (the SDKs' canonical strings); opt-in unverified bearer tokens.
    versions    accepted ``api-version`` values.
    middleware  ``BatchProtocolMiddleware`` (request-id, api-version, auth, body limit, error rendering) and
                ``read_json``.
    filters     ``$filter`` expressions -> predicates.
    odata       ``$select`` and paging (re-exports the filter API).
    responses   JSON responses and headers as the Batch service sends them.
"""

from __future__ import annotations

from .auth import Principal, SharedKeyVerifier
from .middleware import BatchProtocolMiddleware, read_json, request_id, request_principal
from .odata import FILTER_PROPERTIES, apply_select, next_link, paginate, parse_filter, parse_maxresults, parse_select
from .responses import accepted, base_url, batch_json, created, error_document, list_response, ok_empty
from .versions import SUPPORTED_API_VERSIONS, check_api_version

__all__ = [
    "FILTER_PROPERTIES",
    "SUPPORTED_API_VERSIONS",
    "BatchProtocolMiddleware",
    "Principal",
    "SharedKeyVerifier",
    "accepted",
    "apply_select",
    "base_url",
    "batch_json",
    "check_api_version",
    "created",
    "error_document",
    "list_response",
    "next_link",
    "ok_empty",
    "paginate",
    "parse_filter",
    "parse_maxresults",
    "parse_select",
    "read_json",
    "request_id",
    "request_principal",
]
