"""Record versions: every change of a record is kept as a snapshot."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from memsvc.store.data import VersionData
from memsvc.store.orm import (
    RecordRow,
    VersionRow,
)
from memsvc.store.repos.changes import add_change

VERSIONED_FIELDS = (
    "content",
    "kind",
    "status",
    "tags",
    "importance",
    "event_time",
    "valid_from",
    "valid_to",
    "meta",
)


def snapshot_version(row: RecordRow, change: str, at: datetime) -> VersionRow:
    return VersionRow(
        record_pk=row.pk,
        version=row.version,
        change=change,
        changed_at=at,
        **{f: getattr(row, f) for f in VERSIONED_FIELDS},
    )


def new_version(
    s: Session,
    row: RecordRow,
    change: str,
    at: datetime,
    *,
    cause_id: str | None = None,
    op: str | None = "upsert",
) -> None:
    """After changing `row`: bump its version, snapshot it (naming the record that caused the
    change, if any) and log the change for the indexes (`op=None`: no index sees it)."""
    row.version += 1
    row.updated_at = at
    s.flush()
    version = snapshot_version(row, change, at)
    version.cause_id = cause_id
    s.add(version)
    if op is not None:
        add_change(s, row.cube_pk, [row.pk], op)


def versions_for(s: Session, record_pk: int) -> list[VersionRow]:
    return list(
        s.scalars(
            select(VersionRow).where(VersionRow.record_pk == record_pk).order_by(VersionRow.version)
        )
    )


class Versions:
    def __init__(self, s: Session) -> None:
        self._s = s

    def of(self, record_pk: int) -> list[VersionData]:
        """Every version of a record, oldest first."""
        return [VersionData.of(v) for v in versions_for(self._s, record_pk)]
