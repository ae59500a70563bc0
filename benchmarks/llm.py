"""The offline LLM (SmolLM2-135M through cyllama, providers/llm_local.py): load and warm time,
first-token latency and tokens per second for a short spoken-style turn, at 1 and 2 threads,
as wall time and as the process's CPU time (on a shared machine wall time is inflated; CPU
time is not), and the memory a model and each conversation's context take.

    python benchmarks/llm.py [--turns 5] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time

from likeness.providers.base import Message
from likeness.providers.llm_local import LocalLlm

SYSTEM = (
    "You are Ann, a friendly guide at a science museum. You know the exhibits: fossils on the "
    "first floor, the planetarium on the second, and a hands-on physics lab for children."
)
QUESTIONS = [
    "Hi! What can I see here today?",
    "Where are the dinosaurs?",
    "Is the planetarium good for kids?",
    "How long does a visit take?",
    "Thanks, where is the exit?",
    "Can I eat something here?",
    "What time do you close?",
]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


Turn = tuple[str, float, float, int, float, float]


async def turn(llm: LocalLlm, messages: list[Message]) -> Turn:
    wall0, cpu0 = time.perf_counter(), cpu_s()
    first_wall = first_cpu = 0.0
    pieces: list[str] = []
    async for piece in llm.reply(messages):
        if not pieces:
            first_wall, first_cpu = time.perf_counter() - wall0, cpu_s() - cpu0
        pieces.append(str(piece))
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    return "".join(pieces), first_wall, first_cpu, len(pieces), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    base = rss_mb()
    for threads in args.threads:
        llm = LocalLlm(threads=threads, seed=1)
        wall0, cpu0 = time.perf_counter(), cpu_s()
        llm.warm([Message("system", SYSTEM)])
        print(
            f"threads={threads}: warm {time.perf_counter() - wall0:.2f} s "
            f"({cpu_s() - cpu0:.2f} CPU s), RSS +{rss_mb() - base:.0f} MB"
        )
        messages = [Message("system", SYSTEM)]
        rows = []
        for question in QUESTIONS[: args.turns]:
            messages.append(Message("user", question))
            text, fw, fc, n, wall, cpu = asyncio.run(turn(llm, messages))
            messages.append(Message("assistant", text))
            rows.append((fw, fc, n, wall, cpu))
            print(f"  {fw * 1000:4.0f} ms first ({fc * 1000:4.0f} CPU ms), {n:2d} pieces: {text!r}")
        pieces = sum(r[2] for r in rows)
        print(
            f"  median first piece {statistics.median(r[0] for r in rows) * 1000:.0f} ms wall, "
            f"{statistics.median(r[1] for r in rows) * 1000:.0f} ms CPU; "
            f"{pieces / sum(r[3] for r in rows):.0f} pieces/s wall, "
            f"{pieces / sum(r[4] for r in rows):.0f} pieces per CPU-second"
        )
    print(f"RSS: {rss_mb():.0f} MB in all ({rss_mb() - base:.0f} MB for the model and contexts)")


if __name__ == "__main__":
    main()
