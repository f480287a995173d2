"""Reading the ``manifest.json`` of a cached bank (noise clips, room impulse responses)."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, TypeVar

from ser_robot.errors import AcousticsError

__all__ = ["MANIFEST", "read_bank_manifest"]

MANIFEST = "manifest.json"
Record = TypeVar("Record")


def read_bank_manifest(path: str | pathlib.Path, what: str, builder: str, list_key: str,
                       record: Callable[..., Record]) -> tuple[pathlib.Path, list[Record], dict[str, Any]]:
    """``(root, records, data)`` of the bank at ``path`` (its folder or its manifest).

    ``what`` names the bank in errors ("noise bank"), ``builder`` the function that rebuilds it,
    ``list_key`` the manifest's list of records, each passed to ``record(**fields)``. Raises
    :class:`AcousticsError` for a missing or malformed manifest or a missing file.
    """
    path = pathlib.Path(path)
    manifest = path / MANIFEST if path.is_dir() else path
    if not manifest.is_file():
        raise AcousticsError(f"{what} manifest {manifest} not found: build it with {builder}") from None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        records = [record(**fields) for fields in data[list_key]]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise AcousticsError(f"{what} manifest {manifest} is malformed ({error}); rebuild it") from None
    root = manifest.parent
    missing = [r.file for r in records if not (root / r.file).is_file()]
    if missing:
        raise AcousticsError(f"{what} {root}: {len(missing)} file(s) missing, e.g. {missing[0]}; "
                             f"rebuild it with {builder}") from None
    return root, records, data
