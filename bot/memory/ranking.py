"""How membot ranks an owner's memories for a query: one SQL statement fusing the exact vector
rank, per-owner BM25 keywords and named dates, and the stored lexemes it reads."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["add_lexemes", "plan_search", "search_sql"]

log = logging.getLogger(__name__)

# Published defaults, not tuned to any data: reciprocal-rank fusion's k (Cormack, Clarke and
# Büttcher, SIGIR 2009) and BM25's k1 and b (Robertson and Zaragoza; Lucene's defaults).
_RRF_K = 60
_BM25_K1 = 1.2
_BM25_B = 0.75
# Keyword matching stems English words and drops English stop words; words of other languages
# still match as they are written.
_TEXT_SEARCH = "english"
_LEXEMES = "membot_lexemes"  # the memory table's column of full-text lexemes (see add_lexemes)


def search_sql(table: str) -> str:
    """The search, one statement: the owner's current rows only (read through the owner index,
    so no other owner's row is ever ranked or counted; superseded memories are left out), each
    ranked three ways and fused by reciprocal rank (RRF). $1 owner id, $2 query vector, $3 query
    text, $4 date patterns for ``like``, $5 limit.

    - semantic: cosine distance to the query vector, over every row of the owner (exact);
    - keyword: BM25 over the owner's memories (term and document frequencies, document count
      and average length all from the owner's rows alone; length in characters), on the
      stored full-text lexemes; memories sharing no lexeme with the query get no keyword rank;
    - date: when the query names a date, the memories recorded on it or saying they happened on
      it, by cosine distance.
    """
    k1, b = _BM25_K1, _BM25_B
    return f"""
with mine as materialized (
    select id, payload, {_LEXEMES} as lexemes, vector <=> $2 as distance,
           char_length(payload->>'data')::float8 as length
    from "{table}" where payload->>'user_id' = $1 and not (payload ? 'superseded')),
owner as (select count(*)::float8 as n, avg(length) as avg_length from mine),
terms as (select distinct lexeme from unnest(to_tsvector('{_TEXT_SEARCH}', $3))),
matches as (
    select m.id, m.length, w.lexeme, cardinality(w.positions)::float8 as tf
    from mine m cross join lateral unnest(m.lexemes) w
    where w.lexeme in (select lexeme from terms)),
rarity as (
    select lexeme, ln(1 + (owner.n - count(*) + 0.5) / (count(*) + 0.5)) as idf
    from matches cross join owner group by lexeme, owner.n),
keyword as (
    select id, row_number() over (order by sum(
        idf * tf * ({k1} + 1) / (tf + {k1} * (1 - {b} + {b} * length / owner.avg_length))
    ) desc, id) as rank
    from matches join rarity using (lexeme) cross join owner group by id),
semantic as (select id, row_number() over (order by distance, id) as rank from mine),
dated as (
    select id, row_number() over (order by distance, id) as rank from mine
    where left(payload->>'created_at', 10) like any($4::text[])
       or coalesce(payload->>'happened', '') like any($4::text[]))
select m.id::text as id, m.payload->>'data' as text, m.payload->>'created_at' as created_at,
       1 - m.distance as score
from mine m join semantic s using (id) left join keyword k using (id) left join dated d using (id)
order by 1.0 / ({_RRF_K} + s.rank) + coalesce(1.0 / ({_RRF_K} + k.rank), 0)
         + coalesce(1.0 / ({_RRF_K} + d.rank), 0) desc, s.rank
limit $5"""


async def plan_search(conn: asyncpg.Connection[Any], *, table: str, dims: int) -> None:
    """Run the search once, for no one, on ``conn`` (a :data:`bot.database.Warmup`): the
    connection has it planned and prepared before a turn needs it."""
    await conn.fetch(search_sql(table), "", [1.0] + [0.0] * (dims - 1), "", [], 0)


async def add_lexemes(conn: PoolConnectionProxy[Any], table: str) -> None:
    """Give the memory table a column of each memory's full-text lexemes, which Postgres keeps
    up to date on every insert and update (mem0's statements name their columns, so they are
    unaffected): the keyword part of the search reads them instead of parsing every memory of
    the owner again on every search. Adding it rewrites an existing table once."""
    exists = await conn.fetchval(
        "select exists (select from pg_attribute where attrelid = $1::regclass"
        " and attname = $2 and not attisdropped)", f'public."{table}"', _LEXEMES)
    if not exists:
        log.info("adding the full-text column %s to %s (rewrites the table once)", _LEXEMES,
                 table)
        await conn.execute(
            f'alter table "{table}" add column {_LEXEMES} tsvector generated always as'
            f" (to_tsvector('{_TEXT_SEARCH}', coalesce(payload->>'data', ''))) stored")
