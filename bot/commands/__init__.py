"""The commands people type, one registry for every platform.

::

    adapter (slash command, /membot …, :command) → registry: find the command, check admin,
      run its handler (guarded: a fault is one sentence) → private Reply

Groups: ``help`` and ``link``/``unlink`` (registry), ``memory`` (memory: list, search, forget,
export, pause, receipts), ``settings`` (place: a server's or workspace's choices), and the
export files (export).
"""
