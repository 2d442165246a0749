"""A stand-in for vLLM's API server in the stop tests: a process tree as awkward as vLLM's, and more.

``python fake_server_tree.py PIDFILE PORT`` starts a plain child (``sleep``), a child that ignores
SIGTERM (only SIGKILL ends it), and a grandchild that left the process group and session and whose
parent exited (re-parented away from us); every process appends its pid to PIDFILE. Then it answers
``GET /health`` with 200 on PORT, as vLLM does once ready.
"""

from __future__ import annotations

import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
ESCAPES = ("import os, time\nos.setsid()\nif os.fork():\n    os._exit(0)\n"
           "open(os.environ['PIDFILE'], 'a').write(f'{os.getpid()}\\n')\ntime.sleep(1000)")


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    pidfile, port = sys.argv[1], int(sys.argv[2])
    env = dict(os.environ, PIDFILE=pidfile)
    kids = [subprocess.Popen(["sleep", "1000"]), subprocess.Popen([sys.executable, "-c", IGNORES_TERM])]
    subprocess.run([sys.executable, "-c", ESCAPES], env=env, check=True)  # its child stays, orphaned
    with open(pidfile, "a") as f:
        f.write("".join(f"{p}\n" for p in [os.getpid(), *(k.pid for k in kids)]))
    HTTPServer(("127.0.0.1", port), Health).serve_forever()


if __name__ == "__main__":
    main()
