"""Keeping the registry projection up to date with the MODELS stream, and reading one version from it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.governance.domain.errors import UnknownVersion
from services.governance.domain.views import VersionView

if TYPE_CHECKING:
    from services.governance.service_layer.handlers import Governance


async def catch_up(gov: Governance) -> int:
    """Applies every stream event after the projection's position; returns the new position.

    An event the log skipped comes as an ``EventQuarantined``, which `apply` has no writer for: it records only
    its position, in a transaction like any event's, so a bad tail of the stream is read once, not at every
    catch-up.
    """
    async with gov.projection_lock:
        position = await asyncio.to_thread(gov.registry.position)
        if await gov.events.last_seq() <= position:
            return position
        async for event, seq in gov.events.read_all(position):
            await asyncio.to_thread(gov.registry.apply, event, seq)
            position = max(position, seq)
        return position


async def rebuild(gov: Governance) -> int:
    """Empties the projection and re-applies the whole stream; returns the number of events applied."""
    async with gov.projection_lock:
        history = [pair async for pair in gov.events.read_all(0)]
        return await asyncio.to_thread(gov.registry.rebuild, history)


async def view(gov: Governance, model_name: str, version: str) -> VersionView:
    """One version, after catching up (so events another instance appended are in).

    Raises:
        UnknownVersion: If the registry has no such version.
    """
    await catch_up(gov)
    found = await asyncio.to_thread(gov.registry.get, model_name, version)
    if found is None:
        raise UnknownVersion(f"model {model_name} has no version {version}")
    return found
