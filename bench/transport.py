"""CPU per HTTP request of the health checks' transport choices, on this machine.

A bare asyncio server in a child process answers every request after ``--latency-ms``; this
process sends ``--requests`` GETs to it at ``--concurrency`` through one client, and reports
the CPU time of this process per request (so the server's own CPU is not counted).

    python bench/transport.py                        # 400 requests, 50 ms, at 1, 10 and 50
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import textwrap
import time

import httpx

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    LATENCY = float(sys.argv[1]) / 1000
    BODY = b'{"ok": true}'
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                await asyncio.sleep(LATENCY)
                writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n"
                             b"content-length: %d\\r\\n\\r\\n%s" % (len(BODY), BODY))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()
    asyncio.run(main())
    """
)


def make(kind: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if kind == "httpx":
        return httpx.AsyncClient(limits=limits, trust_env=False)
    from httpx_aiohttp import AiohttpTransport

    transport = AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(transport=transport, trust_env=False)


async def run(kind: str, url: str, requests: int, concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)
    async with make(kind, concurrency) as client:

        async def one() -> None:
            async with slots:
                r = await client.get(url)
                assert r.status_code == 200

        await one()  # warm up: the first connection and imports are not what is measured
        cpu = time.process_time()
        await asyncio.gather(*(one() for _ in range(requests)))
        return (time.process_time() - cpu) / requests * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", default="1,10,50")
    args = ap.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency_ms)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1/account"
        print(f"{args.requests} GETs, {args.latency_ms:g} ms latency: CPU ms per request")
        for c in (int(x) for x in args.concurrency.split(",")):
            row = [
                f"{kind} {asyncio.run(run(kind, url, args.requests, c)):.2f}"
                for kind in ("httpx", "httpx+aiohttp")
            ]
            print(f"  concurrency {c:3d}: " + ", ".join(row))
    finally:
        server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
