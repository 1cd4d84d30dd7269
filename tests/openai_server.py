"""An OpenAI-compatible chat-completions server on loopback, for testing the real client path.

It answers according to the request: with ``response_format: json_schema`` it returns JSON for
the named schema (filled by the offline model's responders); with ``tools`` it returns a tool
call; otherwise text. ``malformed`` makes the next N structured answers invalid JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orchestrator_graph.offline import DEFAULT_RESPONDERS, _from_schema


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.malformed = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = "\n".join(str(m.get("content") or "") for m in body["messages"])
        fmt = body.get("response_format") or {}
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if fmt.get("type") == "json_schema":
            spec = fmt["json_schema"]
            responder = DEFAULT_RESPONDERS.get(spec["name"])
            args = responder(prompt, spec["schema"]) if responder else _from_schema(spec["schema"])
            with self.lock:
                broken, self.malformed = self.malformed > 0, max(0, self.malformed - 1)
            message["content"] = '{"truncated": ' if broken else json.dumps(args)
        elif body.get("tools"):
            fn = body["tools"][0]["function"]
            args = _from_schema(fn.get("parameters", {}))
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": json.dumps(args)},
                }
            ]
        else:
            message["content"] = "plain answer"
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": 5,
                "total_tokens": len(prompt.split()) + 5,
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                data = json.dumps(outer.answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
