#!/usr/bin/python3
"""ext_notify_trigger(): payloads at row and statement level, channel
choice, transition tables, the oversize fallback, BEFORE triggers, and
delivery only at commit.  A separate listening session parses each JSON
payload.  Connection from PGHOST/PGPORT/PGUSER/PGDATABASE; exits 1 on failure.
"""
import json
import os
import select
import time

import psycopg

from _tap import check, finish

DSN = dict(host=os.environ.get("PGHOST", "/tmp"), port=os.environ.get("PGPORT", "5432"),
           user=os.environ.get("PGUSER", "postgres"), dbname=os.environ.get("PGDATABASE", "postgres"))
def drain(c, n, timeout=2.0):
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        select.select([c.fileno()], [], [], max(0, deadline - time.time()))
        c.pgconn.consume_input()
        while True:
            x = c.pgconn.notifies()
            if x is None:
                break
            got.append((x.relname.decode(), json.loads(x.extra.decode())))
    return got


def main():
    w = psycopg.connect(**DSN, autocommit=True)     # writer
    l = psycopg.connect(**DSN, autocommit=True)     # listener
    w.execute("CREATE EXTENSION IF NOT EXISTS notify_ext")
    w.execute("DROP TABLE IF EXISTS trg_items, trg_nokey, trg_before")
    w.execute("CREATE TABLE trg_items (id int PRIMARY KEY, name text, big text)")
    w.execute("CREATE TRIGGER r AFTER INSERT OR UPDATE OR DELETE ON trg_items "
              "FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger()")
    w.execute("CREATE TRIGGER s_ins AFTER INSERT ON trg_items REFERENCING NEW TABLE AS nt "
              "FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt')")
    w.execute("CREATE TRIGGER s_del AFTER DELETE ON trg_items REFERENCING OLD TABLE AS ot "
              "FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt')")
    w.execute("CREATE TRIGGER s_upd AFTER UPDATE ON trg_items "
              "FOR EACH STATEMENT EXECUTE FUNCTION ext_notify_trigger('items_stmt')")
    l.execute("SELECT ext_listen('trg_items'), ext_listen('items_stmt')")

    w.execute("INSERT INTO trg_items VALUES (1, 'one', NULL), (2, 'two', NULL)")
    got = drain(l, 3)
    rows = [p for ch, p in got if ch == "trg_items"]
    stmts = [p for ch, p in got if ch == "items_stmt"]
    check("row trigger: one notification per row, on the table's name",
          [r["record"]["id"] for r in rows] == [1, 2], got)
    r = rows[0] if rows else {}
    check("row payload fields", r.get("action") == "INSERT" and r.get("schema") == "public"
          and r.get("table") == "trg_items" and r.get("level") == "row"
          and r.get("record") == {"id": 1, "name": "one", "big": None} and r.get("old") is None
          and isinstance(r.get("timestamp"), str), r)
    check("statement trigger: channel from argument, rows from transition table",
          len(stmts) == 1 and stmts[0]["level"] == "statement" and stmts[0]["rows"] == 2
          and stmts[0]["action"] == "INSERT" and "record" not in stmts[0], stmts)

    w.execute("UPDATE trg_items SET name = 'uno' WHERE id = 1")
    got = drain(l, 2)
    upd = [p for ch, p in got if ch == "trg_items"]
    st = [p for ch, p in got if ch == "items_stmt"]
    check("update: record and old", len(upd) == 1 and upd[0]["record"]["name"] == "uno"
          and upd[0]["old"]["name"] == "one", upd)
    check("statement trigger without transition table: rows is null",
          len(st) == 1 and st[0]["rows"] is None and st[0]["action"] == "UPDATE", st)

    # too large for a payload: the key-only form, and the write succeeds
    w.execute("UPDATE trg_items SET big = repeat('x', 20000) WHERE id = 2")
    got = drain(l, 2)
    big = [p for ch, p in got if ch == "trg_items"]
    check("oversize row: truncated form with primary key",
          len(big) == 1 and big[0].get("truncated") is True and big[0]["record_key"] == {"id": 2}
          and big[0]["old_key"] == {"id": 2} and "record" not in big[0], big)
    n = w.execute("SELECT length(big) FROM trg_items WHERE id = 2").fetchone()[0]
    check("oversize row: the user's write is intact", n == 20000, n)

    w.execute("DELETE FROM trg_items")
    got = drain(l, 3)
    dels = [p for ch, p in got if ch == "trg_items"]
    st = [p for ch, p in got if ch == "items_stmt"]
    check("delete: old only (the big row in key form)",
          len(dels) == 2 and all(d["record"] is None if "record" in d else d["record_key"] is None
                                 for d in dels), dels)
    check("statement delete counts the old transition table", len(st) == 1 and st[0]["rows"] == 2, st)

    # rolled back: nothing; in a transaction: only at commit
    with w.transaction(force_rollback=True):
        w.execute("INSERT INTO trg_items VALUES (10, 'rolled back')")
    check("rolled back write notifies nothing", drain(l, 1, 0.3) == [])
    with w.transaction():
        w.execute("INSERT INTO trg_items VALUES (11, 'eleven')")
        early = drain(l, 1, 0.3)
    later = drain(l, 2)
    check("delivered only once the writing transaction commits",
          early == [] and len(later) == 2, (early, later))

    # table without any key: truncated form without keys
    w.execute("CREATE TABLE trg_nokey (v text)")
    w.execute("CREATE TRIGGER r AFTER INSERT ON trg_nokey FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger('nokey')")
    l.execute("SELECT ext_listen('nokey')")
    w.execute("INSERT INTO trg_nokey VALUES (repeat('y', 9000))")
    got = drain(l, 1)
    check("oversize row without a key: truncated, keys null",
          len(got) == 1 and got[0][1]["truncated"] is True and got[0][1]["record_key"] is None, got)

    # BEFORE ROW: the row goes through unchanged
    w.execute("CREATE TABLE trg_before (id int PRIMARY KEY, v text)")
    w.execute("CREATE TRIGGER b BEFORE INSERT OR UPDATE ON trg_before FOR EACH ROW EXECUTE FUNCTION ext_notify_trigger()")
    l.execute("SELECT ext_listen('trg_before')")
    w.execute("INSERT INTO trg_before VALUES (1, 'kept')")
    w.execute("UPDATE trg_before SET v = 'changed'")
    v = w.execute("SELECT v FROM trg_before").fetchone()[0]
    got = drain(l, 2)
    check("BEFORE trigger returns the row unchanged", v == "changed" and len(got) == 2, (v, got))

    # misuse
    try:
        w.execute("SELECT ext_notify_trigger()")
        check("calling the trigger function directly is an error", False)
    except psycopg.Error as e:
        check("calling the trigger function directly is an error", "trigger" in str(e), e)

    w.execute("DROP TABLE trg_items, trg_nokey, trg_before")
    finish("trigger")


if __name__ == "__main__":
    main()
