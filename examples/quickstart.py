"""Quickstart: one MapReduce application through the Justitia SDK.

Start a server first (the bundled model, Justitia policy):

    .venv/bin/justitia serve            # prints the URL once /health answers

then run:

    .venv/bin/python examples/quickstart.py [http://127.0.0.1:8000]

Every call of the application carries the same ``vllm_xargs.app_id``, so the scheduler treats the
four map calls and the reduce as one application; ``last=True`` tells it the application is done.
"""

from __future__ import annotations

import asyncio
import sys

from openai import AsyncOpenAI

import justitia

TEXT = (
    "Justitia schedules LLM applications, not single requests. An application is a set of correlated "
    "calls: a MapReduce summary of a long file, k samples of one math problem, rounds of a debate. "
    "It computes when each application would finish under ideal fair sharing of the KV cache and "
    "serves applications one by one in that order, each using all the memory it can. Small "
    "applications no longer wait behind big ones, and no application is starved."
)


async def main(url: str) -> None:
    client = AsyncOpenAI(base_url=url.rstrip("/") + "/v1", api_key="EMPTY")
    words = TEXT.split()
    chunks = [" ".join(words[i : i + 20]) for i in range(0, len(words), 20)]
    async with justitia.App(client, type="mapreduce") as app:
        parts = await asyncio.gather(*(
            app.chat([{"role": "user", "content": f"Summarize in one sentence:\n{c}"}], max_tokens=32)
            for c in chunks
        ))
        joined = "\n".join(p.choices[0].message.content for p in parts)
        final = await app.chat([{"role": "user", "content": f"Combine into one sentence:\n{joined}"}],
                               max_tokens=48, last=True)
    print(final.choices[0].message.content)
    print(f"app {app.app_id}: {len(app.calls)} calls, {app.completion_tokens} tokens generated, "
          f"ACT {app.act_s:.2f} s; per call: " + ", ".join(f"{c.latency_s:.2f}s" for c in app.calls))
    await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"))
