"""A client that hangs up before its answer (a run that stopped and gave up its reads) is no
error of the simulator's: no traceback goes to the output of the process it runs in."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from reconciler.simulator import Simulator


def test_a_client_hanging_up_mid_request_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Simulator(latency_ms=200) as sim:
        port = int(sim.base_url("stripe").split(":")[2].split("/")[0])
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(
                b"GET /stripe/v1/webhook_endpoints HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer sk_test_hangup\r\n\r\n"
            )
            time.sleep(0.05)  # the request is being served, its answer not yet written
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # a reset, as a cancelled read's connection is
        time.sleep(0.5)  # the answers were written, into closed connections
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
