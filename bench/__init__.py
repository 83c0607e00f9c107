"""flowgate's benchmark harness (DESIGN §10), run by ``make bench`` as ``python -m bench``.

Every figure is measured against real processes on this machine: the flowgate server and the
reference apps each run as a uvicorn subprocess, the load comes from another process.

Modules:
  config      ``BENCH_*`` knobs
  procs       subprocesses in their own process group, health wait, terminate-then-kill
  load        ``LoadSpec`` → ``LoadResult``; picks the generator (wrk if installed, else Python)
  load_python keep-alive HTTP/1.1 load on raw asyncio streams (runs in a child process)
  load_wrk    the same through ``wrk`` and a Lua ``done`` hook
  refapps     the bare FastAPI references (201 only; SQLite insert+commit; asyncpg insert)
  targets     starting flowgate and the references; flowgate API helpers
  scenarios   the cases of issue 12 (R1…C1, P1), in run order; add one with ``@scenario("X1")``
  report      issue 12's targets, the table, ``bench/results.json`` and ``bench/history.md``
  peer_celery Celery + Redis with the same 3-step chain (``PEERS=1``; runs in ``.venv-peers``)

See docs/performance.md.
"""
