"""Typed dependencies: routes declare what they need by annotation."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from memsvc import Memory

__all__ = ["MemoryDep", "get_memory"]


def get_memory(request: Request) -> Memory:
    return request.app.state.memory


MemoryDep = Annotated[Memory, Depends(get_memory)]
