"""An echo server for the Autobahn cases (kosoku's fuzzingclient mode).

Not part of the test run: sections 1-10 take minutes. Run it and the suite::

    .venv/bin/python -m tests.ws.autobahn_server 9001 &
    .venv/bin/kosoku 127.0.0.1:9001 -i '1.*' ... -i '10.*' -o /tmp/autobahn

It serves through the test-only ``ws-test`` service (see conftest), with the
message limit raised to 16 MiB as section 9 needs, and the slow-consumer cap
raised above the 8 MiB default: echoing a 16 MiB message queues it whole.
"""

from __future__ import annotations

import sys
from typing import Any

import iodine
import tests.ws.conftest  # noqa: F401  # registers the ws-test service


class Echo:
    def on_message(self, conn: Any, data: Any) -> None:
        conn.write(data)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
    iodine.settings.max_pending = 64 * 1024 * 1024
    iodine.listen(
        service="ws-test", handler=Echo, port=port, max_message=16 * 1024 * 1024
    )
    iodine.run()


if __name__ == "__main__":
    main()
