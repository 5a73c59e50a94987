"""A small OpenAI-compatible HTTP endpoint for the oai contrib test, run as its own process.

POST /v1/responses answers as the Responses API does (usage.output_tokens = 7), 404 for the
model "no-such-model"; POST /v1/chat/completions answers a chat completion (completion_tokens
= 5). GET /counts returns how many requests it answered per (path, model).

    python openai_server.py PORT
"""

from __future__ import annotations

import collections
import sys
import time

from aiohttp import web

counts: collections.Counter[str] = collections.Counter()


def _missing(model: str) -> web.Response:
    body = {"error": {"message": f"The model `{model}` does not exist", "type": "invalid_request_error",
                      "param": None, "code": "model_not_found"}}  # fmt: skip
    return web.json_response(body, status=404)


async def responses(request: web.Request) -> web.Response:
    body = await request.json()
    model = body.get("model", "")
    counts[f"/v1/responses {model}"] += 1
    if model == "no-such-model":
        return _missing(model)
    return web.json_response({
        "id": f"resp_{counts.total()}", "object": "response", "created_at": int(time.time()),
        "status": "completed", "model": model, "output": [{
            "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "isinstance(obj, cls), sir!", "annotations": []}],
        }],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 30, "output_tokens": 7, "total_tokens": 37,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    })  # fmt: skip


async def chat(request: web.Request) -> web.Response:
    body = await request.json()
    model = body.get("model", "")
    counts[f"/v1/chat/completions {model}"] += 1
    return web.json_response({
        "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Ni!"}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    })  # fmt: skip


async def report(request: web.Request) -> web.Response:
    return web.json_response(dict(counts))


app = web.Application()
app.router.add_post("/v1/responses", responses)
app.router.add_post("/v1/chat/completions", chat)
app.router.add_get("/counts", report)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
