"""Learning what people say, after the reply and without making it wait.

::

    record   the exchange's turns and the person's message (memory_inbox), one transaction
       ↓     (inbox)
    wake     the owner's job: now when a batch is full, else after the conversation's pause
       ↓     (schedule: the one place that decides when)
    run      one job per owner at a time, on any worker (queue: procrastinate on Postgres);
       ↓     follow links, drop what was paused or forgotten, batch by conversation (learner)
    store    through the memory store; messages leave the inbox only once stored

``pipeline`` ties them together for the rest of the bot: forget an owner's queued writes,
count what waits, run a worker, stop without losing anything.
"""
