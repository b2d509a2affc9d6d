"""Linking a chat account to a Supabase Auth user, so one person's memories follow them.

::

    /link (chat) → one-time URL → page: email → Supabase login link → Confirm → code on the page
      → /link <code> (chat, same account) → link made, the account's rows moved to the user
    auth.users row deleted → owner_purges (trigger) → purge: the erase path, then finished

``flow`` holds each step's rules, ``steps`` what a step shows or refuses, ``emails`` the login
emails (claimed, and capped, before one is sent), ``store`` their tables (every state change one
conditional ``UPDATE … RETURNING``), ``supabase`` the Auth client, ``purge`` the sweep of deleted
users.
"""
