"""enqueue_jobs_per_s: client-side enqueue rate over gRPC against a real `pulse-tui serve` child:
OperatorService.Enqueue of `pulse.noop` jobs, 64 calls in flight on one channel (the server runs
the jobs meanwhile, as it would in production)."""

from __future__ import annotations

import asyncio

from bench.common import Result, main, temp_dir
from bench.serve import Server, enqueue_concurrent
from bench.sizes import enqueue_n

IN_FLIGHT = 64


async def measure(srv: Server, n: int) -> float:
    async with srv.channel() as ch:
        stub = srv.operator(ch)
        await enqueue_concurrent(srv, stub, "pulse.noop", 200, IN_FLIGHT)  # warm up the channel
        return await enqueue_concurrent(srv, stub, "pulse.noop", n, IN_FLIGHT)


def run(quick: bool) -> Result:
    n = enqueue_n(quick)
    with temp_dir("enqueue") as d, Server(d) as srv:
        secs = asyncio.run(measure(srv, n))
    return Result(
        figures={"enqueue_jobs_per_s": n / secs},
        notes={
            "enqueue_jobs_per_s": f"N={n:,} OperatorService.Enqueue calls, {IN_FLIGHT} in flight, client"
            " and `pulse-tui serve` in separate processes"
        },
        params={"n": n, "in_flight": IN_FLIGHT},
        extra={"enqueue_s": round(secs, 3)},
    )


if __name__ == "__main__":
    main(run)
