"""The gate of a stopping replica (serve/draining.py) on a real FastAPI app, over ASGI: what is inside is answered,
what comes after gets the typed 503 + Retry-After, and closing waits for the first and reports it."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from serve.draining import Gate


def _app(gate: Gate, entered: asyncio.Event, release: asyncio.Event) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"answer": "done"}

    @app.get("/fast")
    async def fast() -> dict[str, str]:
        return {"answer": "fast"}

    gate.attach(app)
    return app


def test_a_closed_gate_answers_what_it_holds_and_refuses_the_rest_typed():
    async def scenario():
        gate, entered, release = Gate(retry_after_s=3), asyncio.Event(), asyncio.Event()
        transport = httpx.ASGITransport(app=_app(gate, entered, release))
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            assert (await client.get("/fast")).status_code == 200 and gate.inside == 0
            held = asyncio.create_task(client.get("/slow"))
            await entered.wait()
            assert gate.inside == 1
            closing = asyncio.create_task(gate.close(timeout_s=30))
            await asyncio.sleep(0.1)
            assert not closing.done()  # it waits for the request inside
            refused = await client.get("/fast", headers={"X-Request-ID": "late-1"})
            release.set()
            answered, count = await held, await closing
            return refused, answered, count

    refused, answered, count = asyncio.run(scenario())
    assert answered.status_code == 200 and answered.json() == {"answer": "done"}
    assert count == 1
    assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
    error = refused.json()["error"]
    assert error["type"] == "not_ready" and "shutting down" in error["message"] and error["request_id"] == "late-1"


def test_closing_gives_up_waiting_after_its_timeout():
    async def scenario():
        gate, entered, release = Gate(retry_after_s=1), asyncio.Event(), asyncio.Event()
        transport = httpx.ASGITransport(app=_app(gate, entered, release))
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            held = asyncio.create_task(client.get("/slow"))
            await entered.wait()
            count = await asyncio.wait_for(gate.close(timeout_s=0.2), 5)
            release.set()
            await held
            return count

    assert asyncio.run(scenario()) == 1
