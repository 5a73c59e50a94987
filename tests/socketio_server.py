"""A Socket.IO server for the socketio contrib test, run as its own process.

It behaves as the echo server beside Locust's socketio example (rooms, a chat message
broadcast to the room), runs on aiohttp, and counts every event it handles: GET /counts
returns them as JSON, and GET / is a page for the example's HTTP request.

    python socketio_server.py PORT      (prints "ready" once listening)
"""

from __future__ import annotations

import collections
import sys

import socketio
from aiohttp import web

counts: collections.Counter[str] = collections.Counter()
sio = socketio.AsyncServer(async_mode="aiohttp")
app = web.Application()
sio.attach(app)


@sio.event
async def connect(sid: str, environ: dict[str, object]) -> None:
    counts["connect"] += 1


@sio.event
async def join_room(sid: str, data: dict[str, str]) -> str:
    counts["join_room"] += 1
    await sio.enter_room(sid, data["room"])
    await sio.emit("room_joined", f"{sid} joined {data['room']}", room=data["room"])
    return f"Joined room {data['room']}"


@sio.event
async def leave_room(sid: str, data: dict[str, str]) -> None:
    counts["leave_room"] += 1
    await sio.leave_room(sid, data["room"])


@sio.event
async def send_message(sid: str, data: dict[str, str]) -> None:
    counts["send_message"] += 1
    await sio.emit("chat_message", data["message"], room=data["room"])


@sio.event
async def disconnect(sid: str, reason: object = None) -> None:
    counts["disconnect"] += 1


async def page(request: web.Request) -> web.Response:
    counts["GET /"] += 1
    return web.Response(text="hello")


async def report(request: web.Request) -> web.Response:
    return web.json_response(dict(counts))


app.router.add_get("/", page)
app.router.add_get("/counts", report)


async def ready(app: web.Application) -> None:
    print("ready", flush=True)


if __name__ == "__main__":
    app.on_startup.append(ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
