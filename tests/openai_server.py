"""OpenAI-compatible chat-completions servers on loopback that behave like the real ones, for
testing the real client path (langchain-openai, real HTTP).

``kind`` is what the server accepts for structured output:

- ``openai``: like api.openai.com: ``json_schema`` with ``strict: true`` is checked against the
  strict-mode rules (400 ``invalid_json_schema`` in OpenAI's error shape), strict tools too, and
  ``json_object`` needs the word "json" in the messages (OpenAI's own 400);
- ``json_mode``: like llama.cpp's server: ``json_object`` (with an optional schema) only;
  ``json_schema`` and tools get a 500;
- ``tools``: tool calling only; any ``response_format`` but text gets a 400.

Answers fill the named schema with the offline model's responders. ``fail(mode, times)`` makes
the next requests fail: ``500``, ``429`` (with ``Retry-After``), ``timeout`` (the server holds the
request), ``length`` (cut off, ``finish_reason: length``), ``malformed`` (invalid JSON),
``refusal``, ``401`` (an error that quotes the key), ``400`` (context length). ``tokens`` is the
usage the server reported, summed: what it saw."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from schema_rules import openai_strict

from orchestrator_graph.offline import DEFAULT_RESPONDERS, _from_schema

KINDS = ("openai", "json_mode", "tools")
MODES = ("500", "429", "timeout", "length", "malformed", "refusal", "401", "400")
MALFORMED = '{"summary": "half an answer", '


class Reply(Exception):
    def __init__(self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None):
        self.status, self.error, self.headers = status, error, headers or {}


def _error(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class FakeOpenAI:
    def __init__(self, kind: str = "openai", *, retry_after: float = 0.05, hang: float = 1.0):
        assert kind in KINDS, kind
        self.kind, self.retry_after, self.hang = kind, retry_after, hang
        self.requests: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.malformed = 0  # the next N structured answers are invalid JSON
        self.tokens = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Forget the requests, pending failures and counted tokens (one server, many tests)."""
        with self.lock:
            self.requests, self.failures, self.malformed, self.tokens = [], [], 0, 0

    def fail(self, mode: str, times: int = 1) -> None:
        assert mode in MODES, mode
        with self.lock:
            self.failures += [mode] * times

    def _next_failure(self, modes: tuple[str, ...]) -> str | None:
        """The next failure if it is one of ``modes`` (errors come before the server looks at
        the request; a cut-off, malformed or refused answer needs a request it answers)."""
        with self.lock:
            if self.failures:
                return self.failures.pop(0) if self.failures[0] in modes else None
            if self.malformed and "malformed" in modes:
                self.malformed -= 1
                return "malformed"
        return None

    # --- what a real server refuses ------------------------------------------------------

    def _refuse(self, body: dict[str, Any]) -> None:
        fmt = (body.get("response_format") or {}).get("type", "text")
        if self.kind == "json_mode" and (fmt == "json_schema" or body.get("tools")):
            what = "response_format" if fmt == "json_schema" else "tools"
            raise Reply(
                500,
                _error(
                    f"1 validation error for CreateChatCompletionRequest {what}: "
                    "Input should be 'text' or 'json_object'",
                    "internal_server_error",
                ),
            )
        if self.kind == "tools" and fmt != "text":
            raise Reply(
                400,
                _error(
                    f"response_format of type '{fmt}' is not supported with this model",
                    "invalid_request_error",
                    "response_format",
                ),
            )
        if self.kind == "openai":
            self._openai_rules(body, fmt)

    def _openai_rules(self, body: dict[str, Any], fmt: str) -> None:
        if fmt == "json_schema":
            spec = body["response_format"]["json_schema"]
            problems = openai_strict(spec["schema"]) if spec.get("strict") else []
            if problems:
                raise Reply(
                    400,
                    _error(
                        f"Invalid schema for response_format '{spec['name']}': {problems[0]}",
                        "invalid_request_error",
                        "response_format",
                        "invalid_json_schema",
                    ),
                )
        for tool in body.get("tools") or []:
            fn = tool["function"]
            problems = openai_strict(fn.get("parameters", {})) if fn.get("strict") else []
            if problems:
                raise Reply(
                    400,
                    _error(
                        f"Invalid schema for function '{fn['name']}': {problems[0]}",
                        "invalid_request_error",
                        "tools",
                        "invalid_function_parameters",
                    ),
                )
        text = json.dumps(body["messages"]).lower()
        if fmt == "json_object" and "json" not in text:
            raise Reply(
                400,
                _error(
                    "'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'.",
                    "invalid_request_error",
                    "messages",
                ),
            )

    # --- answers -------------------------------------------------------------------------

    def _failure(self, mode: str | None) -> None:
        if mode == "500":
            raise Reply(
                500,
                _error("The server had an error while processing your request.", "server_error"),
            )
        if mode == "429":
            raise Reply(
                429,
                _error("Rate limit reached for requests", "requests", None, "rate_limit_exceeded"),
                {"Retry-After": f"{self.retry_after:g}"},
            )
        if mode == "401":
            raise Reply(
                401,
                _error(
                    "Incorrect API key provided: sk-proj-abcdefghijklmnop1234. You can find "
                    "your API key at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    None,
                    "invalid_api_key",
                ),
            )
        if mode == "400":
            raise Reply(
                400,
                _error(
                    "This model's maximum context length is 4096 tokens.",
                    "invalid_request_error",
                    "messages",
                    "context_length_exceeded",
                ),
            )
        if mode == "timeout":
            time.sleep(self.hang)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        first = self._next_failure(("500", "429", "timeout", "401", "400"))
        self._failure(first)
        self._refuse(body)
        # a request held past its client's time-out answers late: it takes no later test's failure
        mode = (
            None if first == "timeout" else self._next_failure(("length", "malformed", "refusal"))
        )
        prompt = "\n".join(str(m.get("content") or "") for m in body["messages"])
        name, schema = self._wanted(body, prompt)
        args = DEFAULT_RESPONDERS[name](prompt, schema) if name in DEFAULT_RESPONDERS else None
        text = json.dumps(args if args is not None else _from_schema(schema or {}))
        if mode == "malformed":
            text = MALFORMED
        elif mode == "length":
            text = text[: max(1, len(text) // 2)]
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if mode == "refusal":
            message["refusal"] = "I'm sorry, I can't help with that request."
        elif body.get("tools"):
            call = {"name": name, "arguments": text}
            message["tool_calls"] = [{"id": "call_1", "type": "function", "function": call}]
        elif name:
            message["content"] = text
        else:
            message["content"] = "plain answer"
        used = len(prompt.split()) + len(text.split())
        with self.lock:
            self.tokens += used + 5
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "length"
                    if mode == "length"
                    else ("tool_calls" if body.get("tools") else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(text.split()) + 5,
                "total_tokens": used + 5,
            },
        }

    @staticmethod
    def _wanted(body: dict[str, Any], prompt: str) -> tuple[str | None, dict[str, Any] | None]:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return fmt["json_schema"]["name"], fmt["json_schema"]["schema"]
        if body.get("tools"):
            choice = body.get("tool_choice")
            fn = body["tools"][0]["function"]
            if isinstance(choice, dict):
                fn = next(
                    t["function"]
                    for t in body["tools"]
                    if t["function"]["name"] == choice["function"]["name"]
                )
            return fn["name"], fn.get("parameters", {})
        if fmt.get("type") == "json_object":
            found = re.findall(r'<schema name="([^"]+)">\s*(.*?)\s*</schema>', prompt, re.S)
            if found:
                return found[-1][0], fmt.get("schema") or json.loads(found[-1][1])
            return "object", {}
        return None, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "at": time.monotonic()})
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                try:
                    status, data, headers = 200, outer.answer(body), {}
                except Reply as reply:
                    status, data, headers = reply.status, reply.error, reply.headers
                payload = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its time-out)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
