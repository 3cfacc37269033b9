"""Recall channels. Generators find candidates in the whole cube (dense, keyword, entity,
temporal); boosters re-score the fused list (speaker, session, recency). One signature each.
`retention` is the lifecycle's rescoring (retrieval/retention.py), applied by the pipeline to
the head of the fused list, where the records' own fields are read."""

from retrieval.channels.dense import dense
from retrieval.channels.entity import entity
from retrieval.channels.keyword import keyword
from retrieval.channels.recency import recency
from retrieval.channels.session import session
from retrieval.channels.speaker import speaker
from retrieval.channels.temporal import temporal

GENERATORS = {"dense": dense, "keyword": keyword, "entity": entity, "temporal": temporal}
BOOSTERS = {"session": session, "speaker": speaker, "recency": recency}
RESCORERS = ("retention",)
CHANNELS = (*GENERATORS, *BOOSTERS, *RESCORERS)

__all__ = ["BOOSTERS", "CHANNELS", "GENERATORS", "RESCORERS"]
