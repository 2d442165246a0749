"""Fixtures of the runner tests.

``fake_openai`` is a tiny OpenAI-compatible HTTP server used ONLY to test our own tagging logic in
the SDK (what goes into ``extra_body``); the real path is tested against the real vLLM server in
``test_e2e.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class FakeOpenAI:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                                 "created": 0, "owned_by": "me"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.bodies.append(body)
                    fail = fake.fail_next > 0
                    if fail:
                        fake.fail_next -= 1
                if fail:
                    self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                    return
                n_prompt = len(body.get("prompt") or "") if "prompt" in body else 7
                usage = {"prompt_tokens": n_prompt, "completion_tokens": body.get("max_tokens") or 1,
                         "total_tokens": n_prompt + (body.get("max_tokens") or 1)}
                if self.path.endswith("/chat/completions"):
                    self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                                     "choices": [{"index": 0, "finish_reason": "length",
                                                  "message": {"role": "assistant", "content": "ok"}}],
                                     "usage": usage})
                else:
                    self._send(200, {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                                     "choices": [{"index": 0, "text": "ok", "finish_reason": "length", "logprobs": None}],
                                     "usage": usage})

        return H


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI()
    f.thread.start()
    try:
        yield f
    finally:
        f.httpd.shutdown()
        f.httpd.server_close()
