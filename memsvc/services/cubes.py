"""Tenancy and cubes: which cubes and records a tenant may read or write, and the cube calls.

Every lookup by name or id goes through here, scoped to the tenant: its own cubes ("owner")
and cubes shared with it ("read", read-only).
"""

from __future__ import annotations

from typing import Any

from memsvc._convert import cube_model
from memsvc.errors import Conflict, CubeNotFound, InvalidInput, PermissionDenied, RecordNotFound
from memsvc.models import Cube
from memsvc.services.engine import Engine
from memsvc.store.data import CubeData, RecordData
from memsvc.store.errors import StoreConflict
from memsvc.store.index_spec import IndexSpecError, parse_index_spec
from memsvc.store.two_stage import MODES
from memsvc.store.tx import Tx
from memsvc.validation import check_cube_name, check_ident, check_metadata

__all__ = ["CubeService", "default_cube_name", "shown_to_readers"]


def default_cube_name(user_id: str) -> str:
    return f"user:{user_id}"


def shown_to_readers(record: RecordData) -> bool:
    """What a tenant a cube is shared with may see of it: its active plaintext records.
    Deleted and archived records are the owner's to restore or purge, and a KV cache or an
    adapter is built from records as they were, so it can hold text deleted since."""
    return record.status == "active" and record.tier == "plaintext"


class CubeService:
    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.tenant = tenant

    @property
    def tenant_pk(self) -> int:
        return self.engine.tenant_pk(self.tenant)

    # ---- access ------------------------------------------------------------------------------

    def resolve(self, tx: Tx, cube: str, *, write: bool = False) -> tuple[CubeData, str]:
        """(cube, access); `PermissionDenied` when writing to a cube shared read-only."""
        if not isinstance(cube, str) or not cube or len(cube) > 300:
            raise InvalidInput("cube must be a cube name or id", details={"field": "cube"})
        found = tx.cubes.resolve(self.tenant_pk, cube) if "\x00" not in cube else None
        if found is None:
            raise CubeNotFound(f"cube {cube!r} not found", details={"cube": cube})
        if write and found[1] != "owner":
            raise PermissionDenied(
                f"cube {cube!r} is shared with you read-only", details={"cube": cube}
            )
        return found

    def shared(self, tx: Tx, cube: str) -> CubeData | None:
        """The cube if it is (still) shared with this tenant, else None."""
        found = tx.cubes.resolve(self.tenant_pk, cube) if "\x00" not in cube else None
        return found[0] if found is not None and found[1] == "read" else None

    def find(self, tx: Tx, cube: str, *, write: bool = False) -> CubeData:
        return self.resolve(tx, cube, write=write)[0]

    def cube_for(
        self, *, cube: str | None, user_id: str | None, create: bool, write: bool = False
    ) -> CubeData | None:
        """The named cube (must exist), or the user's default cube (made when `create`)."""
        db = self.engine.db
        if cube is not None:
            with db.reading() as tx:
                return self.find(tx, cube, write=write)
        if user_id is None:
            raise InvalidInput("give user_id or cube", details={"field": "user_id"})
        name = default_cube_name(user_id)
        with db.reading() as tx:
            row = tx.cubes.find(self.tenant_pk, name=name)
        if row is not None or not create:
            return row
        try:
            return self._create(name=name, owner_user_id=user_id)
        except StoreConflict:  # another writer made it first
            with db.reading() as tx:
                return tx.cubes.find(self.tenant_pk, name=name)

    def located(self, tx: Tx, id: str, *, write: bool = False) -> tuple[RecordData, CubeData]:
        """A record this tenant may see (or write), with its cube."""
        if not isinstance(id, str) or not id or len(id) > 64:
            raise InvalidInput("id must be a record id string", details={"field": "id"})
        # no id holds a NUL (and PostgreSQL cannot even compare one): simply not found
        found = tx.records.get_with_cube(self.tenant_pk, id) if "\x00" not in id else None
        if found is None or (found[2] != "owner" and not shown_to_readers(found[0])):
            raise RecordNotFound(f"record {id} not found", details={"id": id})
        if write and found[2] != "owner":
            raise PermissionDenied(
                f"record {id} is in a cube shared with you read-only", details={"id": id}
            )
        return found[0], found[1]

    def record(self, tx: Tx, id: str, *, write: bool = False) -> RecordData:
        return self.located(tx, id, write=write)[0]

    def located_for_write(self, tx: Tx, id: str) -> tuple[RecordData, CubeData]:
        """`located` in a write transaction: the cube's change-log lock first, then the
        record as the last writer left it."""
        record, cube = self.located(tx, id, write=True)
        fresh = tx.records.for_write(record.pk)
        if fresh is None:
            raise RecordNotFound(f"record {id} not found", details={"id": id})
        return fresh, cube

    def record_for_write(self, tx: Tx, id: str) -> RecordData:
        return self.located_for_write(tx, id)[0]

    def check_model(self, cube: CubeData) -> None:
        emb = self.engine.embedder
        if cube.embedding_model != emb.model_id or cube.embedding_dim != emb.dim:
            raise Conflict(
                f"cube {cube.name!r} was embedded with {cube.embedding_model} "
                f"({cube.embedding_dim}d); this service uses {emb.model_id} ({emb.dim}d)",
                details={"cube": cube.name},
            )

    def _create(self, **fields: Any) -> CubeData:
        emb = self.engine.embedder
        with self.engine.db.writing() as tx:
            return tx.cubes.create(
                self.tenant_pk, embedding_model=emb.model_id, embedding_dim=emb.dim, **fields
            )

    def owns(self, cube: CubeData) -> bool:
        """Whether this tenant owns the cube (else it reads it through a share)."""
        return cube.tenant_pk == self.tenant_pk

    @staticmethod
    def out(tx: Tx, row: CubeData, access: str) -> Cube:
        counts = tx.cubes.record_counts([row.pk])[row.pk]
        if access == "owner":
            n, shared = sum(counts.values()), tx.tenancy.shares_of(row.pk)
        else:  # a reader learns nothing of what the owner deleted or archived
            n, shared = counts.get("active", 0), []
        return cube_model(row, n, access=access, shared_with=shared)

    # ---- the SDK's cube calls ------------------------------------------------------------------

    def create_cube(
        self,
        name: str,
        *,
        description: str | None = None,
        owner_user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        search_mode: str | None = None,
        refuse_duplicates: bool = False,
    ) -> Cube:
        check_cube_name(name)
        if not isinstance(refuse_duplicates, bool):
            raise InvalidInput(
                "refuse_duplicates must be true or false", details={"field": "refuse_duplicates"}
            )
        check_ident(owner_user_id, field="owner_user_id")
        metadata = check_metadata(metadata) if metadata is not None else None
        if description is not None and (not isinstance(description, str) or "\x00" in description):
            raise InvalidInput(
                "description must be text without NUL", details={"field": "description"}
            )
        if search_mode is not None:
            try:
                parse_index_spec(search_mode)
            except IndexSpecError as exc:
                raise InvalidInput(
                    f"search_mode: {exc} (one of {', '.join(MODES)}, or a spec such as "
                    '"SQ8,Rescore20")',
                    details={"field": "search_mode"},
                ) from exc
        with self.engine.db.reading() as tx:
            if tx.cubes.find(self.tenant_pk, name=name) is not None:
                raise Conflict(f"cube {name!r} already exists", details={"cube": name})
        try:
            row = self._create(
                name=name,
                description=description,
                owner_user_id=owner_user_id,
                meta=metadata,
                search_mode=search_mode,
                refuse_duplicates=refuse_duplicates,
            )
        except StoreConflict as exc:
            raise Conflict(f"cube {name!r} already exists", details={"cube": name}) from exc
        return cube_model(row)

    def get_cube(self, cube: str) -> Cube:
        with self.engine.db.reading() as tx:
            row, access = self.resolve(tx, cube)
            return self.out(tx, row, access)

    def list_cubes(self) -> list[Cube]:
        with self.engine.db.reading() as tx:
            own = [(r, "owner") for r in tx.cubes.owned(self.tenant_pk)]
            shared = [(r, "read") for r in tx.cubes.shared_with(self.tenant_pk)]
            return [self.out(tx, r, a) for r, a in own + shared]

    def delete_cube(self, cube: str) -> None:
        with self.engine.db.writing() as tx:
            row = self.find(tx, cube, write=True)
            tx.cubes.delete(row.pk)
        self.engine.forget_cube(row.pk)
        self.engine.indexes.drop(row)
        self.engine.tiers.blobs.drop_cube(row.id)

    def share_cube(self, cube: str, tenant: str) -> Cube:
        check_ident(tenant, field="tenant", required=True)
        if tenant == self.tenant:
            raise InvalidInput(
                "a cube cannot be shared with its owner", details={"field": "tenant"}
            )
        with self.engine.db.writing() as tx:
            row = self.find(tx, cube, write=True)
            tx.tenancy.share(row.pk, tenant)
        with self.engine.db.reading() as tx:
            return self.out(tx, row, "owner")

    def unshare_cube(self, cube: str, tenant: str) -> Cube:
        """Revoke a share. The recipient's next call no longer finds the cube; its cached
        recall lookups are checked against the shares on each recall (`RecallService`)."""
        check_ident(tenant, field="tenant", required=True)
        with self.engine.db.writing() as tx:
            row = self.find(tx, cube, write=True)
            tx.tenancy.unshare(row.pk, tenant)
        with self.engine.db.reading() as tx:
            return self.out(tx, row, "owner")
