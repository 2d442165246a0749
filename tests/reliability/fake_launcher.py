"""A launcher like ``justitia bench``: N servers (:class:`justitia.vllm.serve.Server`, each running
``fake_server_tree.py`` instead of vLLM) under :func:`justitia.lifecycle.stop_servers_on_signals`.

``python fake_launcher.py MODEL_DIR WORKDIR PORT N`` prints ``ready`` once every server answers
``/health``, then waits to be signalled; it exits with 128 + the signal's number.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from justitia.lifecycle import Interrupted, stop_servers_on_signals
from justitia.vllm.serve import Server

TREE = Path(__file__).with_name("fake_server_tree.py")


class FakeServer(Server):
    def command(self) -> list[str]:
        return [sys.executable, str(TREE), str(self.pidfile), str(self.port)]

    @property
    def pidfile(self) -> Path:
        assert self.log_file is not None
        return self.log_file.with_suffix(".pids")


def main() -> int:
    model_dir, work, port, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    try:
        with stop_servers_on_signals():
            servers = [FakeServer(model_dir, port=port + i, policy="fcfs", stop_grace_s=1.0,
                                  log_file=work / f"server{i}.log") for i in range(n)]
            for srv in servers:
                srv.start()
            for srv in servers:
                srv.wait_ready(60)
            print("ready", flush=True)
            time.sleep(600)
    except Interrupted as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
