"""Recall channels. Generators find candidates in the whole cube (dense, keyword, entity,
temporal); boosters re-score the fused list (speaker, session, recency). One signature each.
`retention` is the lifecycle's rescoring (retrieval/retention.py), applied by the pipeline to
the head of the fused list, where the records' own fields are read."""

from memsvc.retrieval.channels.dense import dense
from memsvc.retrieval.channels.entity import entity
from memsvc.retrieval.channels.keyword import keyword
from memsvc.retrieval.channels.recency import recency
from memsvc.retrieval.channels.session import session
from memsvc.retrieval.channels.speaker import speaker
from memsvc.retrieval.channels.temporal import temporal

GENERATORS = {"dense": dense, "keyword": keyword, "entity": entity, "temporal": temporal}
BOOSTERS = {"session": session, "speaker": speaker, "recency": recency}
RESCORERS = ("retention",)
CHANNELS = (*GENERATORS, *BOOSTERS, *RESCORERS)

__all__ = ["BOOSTERS", "CHANNELS", "GENERATORS", "RESCORERS"]
