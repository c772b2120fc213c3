"""Outbound HTTP: several upstreams at once, on one shared client, within one deadline."""

import asyncio

import httpx


# --8<-- [start:fanout]
async def fetch_all(client: httpx.AsyncClient, urls: dict[str, str], deadline: float) -> dict:
    """GET every URL at once; the JSON bodies by name, or an exception for the caller.

    If any request fails, or the deadline passes, the TaskGroup cancels the
    others before the exception leaves this function: nothing keeps running.
    """
    async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
        tasks = {name: group.create_task(client.get(url)) for name, url in urls.items()}
    results = {}
    for name, task in tasks.items():
        response = task.result()
        response.raise_for_status()
        results[name] = response.json()
    return results


# --8<-- [end:fanout]
