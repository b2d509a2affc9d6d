"""Long-term memory: Mem0 on Postgres + pgvector, with what Mem0 gets wrong put right.

::

    search:  query → embedding (async client) → one per-owner statement: vector + BM25 + dates,
             fused by reciprocal rank (ranking, dates)                              → store
    learn:   messages → Mem0 ``add`` on a thread pool (its extraction answer checked:
             extraction; its history in Postgres: history)                          → store
    owners:  erase everything of an owner (tombstone first); move an owner's rows to another

Only this package imports Mem0 (:mod:`bot.memory.mem0`), after turning its telemetry off.
"""
