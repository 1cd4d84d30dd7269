"""A stand-in LangSmith endpoint on loopback that records what the client sends: runs (from
multipart or JSON batches) and feedback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorded:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.feedback: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, method: str, path: str, content_type: str, body: bytes) -> None:
        with self.lock:
            self.requests.append((method, path))
            if path.startswith("/runs/multipart"):
                self._multipart(content_type, body)
            elif path.startswith("/runs/batch"):
                data = json.loads(body)
                for run in [*data.get("post", []), *data.get("patch", [])]:
                    self.runs.setdefault(run["id"], {}).update(run)
            elif path.startswith("/runs") and method == "POST":
                run = json.loads(body)
                self.runs.setdefault(run["id"], {}).update(run)
            elif path.startswith("/feedback") and method == "POST":
                self.feedback.append(json.loads(body))

    def _multipart(self, content_type: str, body: bytes) -> None:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition") or ""
            rest = name.partition(".")[2]
            run_id, _, field = rest.partition(".")
            value = json.loads(part.get_payload(decode=True) or b"null")
            run = self.runs.setdefault(run_id, {})
            if field:
                run[field] = value
            elif isinstance(value, dict):
                run.update(value)

    def named(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.runs.values() if "name" in r}


@contextmanager
def recording_endpoint() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded.add(self.command, self.path, self.headers.get("content-type", ""), body)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PATCH = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
