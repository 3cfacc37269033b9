"""The services behind `memsvc.Memory`, one job each.

- `engine`: the composition root: database, indexes, embedder, tiers, keys, clocks, shared
  by every tenant view of one data directory.
- `cubes`: tenancy and cubes: which cubes and records a tenant may read or write.
- `ingest`: add, update and restore: validate, split into items, turn context, embed, one
  transaction, index.
- `recall`: plan, embed (only when a channel needs a vector), search, reinforce.
- `reads`: get, list, history, lineage, graph pages and neighbors.
- `lifecycle`: delete, maintenance runs.
- `tiers`: activation (KV cache) and parametric (LoRA) tiers.
- `transfer`: export and import of `.memcube` files.
- `admin`: keys, rate limiter, maintenance lease, maintain-all, cube stats, index operations.

`Memory` (memsvc/memory.py) is a facade whose methods delegate here one to one.
"""
