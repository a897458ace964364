"""The Batch data-plane ``api-version`` values the emulator accepts.

The list follows the stable folders of the Batch data-plane REST specification
(``specification/batch/data-plane/Microsoft.Batch/stable/<version>``): the emulator speaks the subset of the API
that is common to all of them, so any of these versions is answered the same way.
"""

from __future__ import annotations

from ..errors import invalid_query, missing_query

__all__ = [
    "API_VERSION_PARAM",
    "LATEST_API_VERSION",
    "SUPPORTED_API_VERSIONS",
    "check_api_version",
]

API_VERSION_PARAM = "api-version"

LATEST_API_VERSION = "2025-06-01"
"""What azure-batch 15.x sends."""

SUPPORTED_API_VERSIONS: frozenset[str] = frozenset(
    {
        "2025-06-01",  # azure-batch 15.x
        "2024-07-01.20.0",  # azure-batch 14.2.x
        "2024-02-01.19.0",  # azure-batch 14.1.x
        "2023-11-01.18.0",
        "2023-05-01.17.0",
        "2022-10-01.16.0",
        "2022-01-01.15.0",
        "2021-06-01.14.0",
        "2021-01-01.13.0",
        "2020-09-01.12.0",
        "2020-03-01.11.0",
        "2019-08-01.10.0",
        "2019-06-01.9.0",
        "2018-12-01.8.0",
    }
)


def check_api_version(value: str | None) -> str:
    """Validate the ``api-version`` query parameter of a Batch request.

    Args:
        value: the first value of the ``api-version`` query parameter, or None when absent (or empty).

    Returns:
        The accepted version string.

    Raises:
        BatchError: 400 ``MissingRequiredQueryParameter`` when absent, 400 ``InvalidQueryParameterValue`` when the
            version is not one the Batch service (and so the emulator) knows.
    """
    if not value:
        raise missing_query(API_VERSION_PARAM)
    if value not in SUPPORTED_API_VERSIONS:
        raise invalid_query(API_VERSION_PARAM, value, "The specified api-version is not supported.")
    return value
