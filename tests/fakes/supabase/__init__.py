"""A local stand-in for Supabase Auth (GoTrue), used by the test suite.

`FakeSupabaseAuth` is a real HTTP server (aiohttp) on 127.0.0.1, in its own thread and event
loop, that speaks the part of Supabase Auth a magic-link sign-in uses, under `<url>/auth/v1`:
`POST /otp`, `GET` and `POST /verify`, `POST /token` (grant types `pkce` and `refresh_token`),
`GET /user`, `POST /logout`, the admin routes `POST /admin/generate_link`, `GET` and
`POST /admin/users`, `GET` and `DELETE /admin/users/{id}`, and `GET /health`, `/settings` and
`/.well-known/jwks.json`. Its behaviour follows the server's code (supabase/auth, commit
bc32168e) where its OpenAPI description differs, e.g. `GET /verify` answers 303, not 302.

What it guarantees:

- Keys and tokens are HS256 JWTs signed with `jwt_secret`: `anon_key` and `service_key` (role
  `service_role`), and access tokens with `sub`, `aud` "authenticated", `role`, `session_id`,
  `email`, `exp` and `iat`. Every route but `GET /verify` answers 401 without one of the two
  keys in an `apikey` header, as Supabase's gateway does; admin routes answer 403 `not_admin`
  unless the bearer token's role is `service_role`.
- Errors are `{"code": <status>, "error_code": ..., "msg": ...}`, or `{"code": <error_code>,
  "message": ...}` when the request's `X-Supabase-Api-Version` is 2024-01-01 or later (which
  supabase-py always sends); either way the code is also in the `x-sb-error-code` header.
- A link goes to the outbox (`outbox`, `mails_to`, `wait_for_mail`), never anywhere else; a new
  one replaces the address's previous one; re-sending within `resend_interval` is a 429
  `over_email_send_rate_limit`; links and codes are single use and expire after `otp_ttl`; a
  PKCE auth code after 300 s. Time is the fake's clock, which `advance()` moves.
- A PKCE link (`token=pkce_...`) redirects to `redirect_to` with `code` merged into its query;
  an implicit one puts the session in the fragment; a bad one redirects with
  `error=access_denied&error_code=otp_expired`. A redirect the allow-list refuses becomes
  `site_url` without a word (loopback IP hosts are always allowed, as on the server).
- Every request is recorded (`requests`, `calls("POST /otp")`, `wait_for`), with the answer.
- With `database_url`, users are written to (and deleted from) that database's `auth.users`;
  a row a test deletes with SQL deletes the user, as it would on Supabase.
"""

from tests.fakes.supabase.errors import AuthError
from tests.fakes.supabase.model import AuthUser, Json, Mail, Recorded
from tests.fakes.supabase.server import BASE_PATH, FakeSupabaseAuth
from tests.fakes.supabase.urls import RedirectPolicy, compile_glob

__all__ = ["BASE_PATH", "AuthError", "AuthUser", "FakeSupabaseAuth", "Json", "Mail", "Recorded",
           "RedirectPolicy", "compile_glob"]
