/*
 * relay_schema.c -- the DDL of the outbox and of the barrier, as `saga
 * relay --schema` prints it and docs/outbox.md shows it.
 *
 * The table's name is a placeholder: {T} the name as given ([schema.]name),
 * {B} its last part (for the index's and the trigger's names, which take no
 * schema). Both are checked (saga_relay_table_valid) before they are put
 * in: lower-case identifiers need no quoting and read the same quoted or
 * not in the service's own SQL.
 */
#include <stdlib.h>
#include <string.h>

#include "relay/relay.h"

#define IDENT_MAX 55

static const char schema_text[] =
    "-- saga outbox: the service inserts one row per saga to start, in the\n"
    "-- same transaction as its own data; `saga relay` submits it (the row's\n"
    "-- id becomes the saga's id) and sets delivered_at, or sets error when\n"
    "-- the engine refuses it for good.\n"
    "CREATE TABLE IF NOT EXISTS {T} (\n"
    "    id           text PRIMARY KEY,\n"
    "    saga         text NOT NULL,\n"
    "    input        jsonb NOT NULL,\n"
    "    created_at   timestamptz NOT NULL DEFAULT now(),\n"
    "    delivered_at timestamptz,\n"
    "    error        text\n"
    ");\n"
    "\n"
    "-- What the relay scans: the pending rows, oldest first.\n"
    "CREATE INDEX IF NOT EXISTS {B}_pending ON {T} (created_at, id)\n"
    "    WHERE delivered_at IS NULL AND error IS NULL;\n"
    "\n"
    "-- Wakes the relays (LISTEN \"{T}\") when an insert commits; a\n"
    "-- rolled-back insert notifies nobody. The relays also poll.\n"
    "CREATE OR REPLACE FUNCTION {T}_notify() RETURNS trigger\n"
    "LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    PERFORM pg_notify('{T}', '');\n"
    "    RETURN NULL;\n"
    "END\n"
    "$$;\n"
    "DROP TRIGGER IF EXISTS {B}_notify ON {T};\n"
    "CREATE TRIGGER {B}_notify AFTER INSERT ON {T}\n"
    "    FOR EACH STATEMENT EXECUTE FUNCTION {T}_notify();\n"
    "\n"
    "-- saga barrier: for services that implement steps. One row per\n"
    "-- (saga, step, operation) a call was recorded for; `blocked` marks an\n"
    "-- action recorded by a compensation that came first.\n"
    "CREATE TABLE IF NOT EXISTS saga_barrier (\n"
    "    saga_id    text NOT NULL,\n"
    "    step       text NOT NULL,\n"
    "    op         text NOT NULL CHECK (op IN ('action', 'compensation', 'confirm')),\n"
    "    blocked    boolean NOT NULL DEFAULT false,\n"
    "    created_at timestamptz NOT NULL DEFAULT now(),\n"
    "    PRIMARY KEY (saga_id, step, op)\n"
    ");\n"
    "\n"
    "-- saga_barrier(key): call it first thing in the transaction that does\n"
    "-- the step's work, with the Idempotency-Key the engine sent\n"
    "-- (<saga-id>/<step>/<action|compensation>; TCC: try, cancel, confirm).\n"
    "-- true: do the work now, in this transaction; false: do nothing and\n"
    "-- answer success. true exactly for the first action (or try) whose\n"
    "-- compensation (cancel) was not recorded before, the first compensation\n"
    "-- whose action was recorded before, and the first confirm. A\n"
    "-- compensation that comes first records both, so it does nothing and\n"
    "-- the action that arrives after it is skipped too. Concurrent calls\n"
    "-- with one key: the primary key makes the later ones wait for the\n"
    "-- first's transaction; exactly one gets true. A rolled-back transaction\n"
    "-- takes its record with it: the retry does the work.\n"
    "CREATE OR REPLACE FUNCTION saga_barrier(key text) RETURNS boolean\n"
    "LANGUAGE plpgsql AS $$\n"
    "DECLARE\n"
    "    m text[];\n"
    "    kind text;\n"
    "    n_action int;\n"
    "    n_self int;\n"
    "BEGIN\n"
    "    m := regexp_match(key, '^([^/]+)/(.+)/([^/]+)$');\n"
    "    IF m IS NULL THEN\n"
    "        RAISE EXCEPTION 'saga_barrier: key ''%'' is not <saga-id>/<step>/<phase>', key\n"
    "            USING ERRCODE = '22023';\n"
    "    END IF;\n"
    "    kind := CASE m[3] WHEN 'action' THEN 'action' WHEN 'try' THEN 'action'\n"
    "                      WHEN 'compensation' THEN 'compensation'\n"
    "                      WHEN 'cancel' THEN 'compensation'\n"
    "                      WHEN 'confirm' THEN 'confirm' END;\n"
    "    IF kind IS NULL THEN\n"
    "        RAISE EXCEPTION 'saga_barrier: key ''%'': phase ''%'' is not action, '\n"
    "            'compensation, try, cancel or confirm', key, m[3] USING ERRCODE = '22023';\n"
    "    END IF;\n"
    "    IF kind = 'compensation' THEN\n"
    "        -- records the action as blocked when it never came\n"
    "        INSERT INTO saga_barrier (saga_id, step, op, blocked)\n"
    "            VALUES (m[1], m[2], 'action', true) ON CONFLICT DO NOTHING;\n"
    "        GET DIAGNOSTICS n_action = ROW_COUNT;\n"
    "        INSERT INTO saga_barrier (saga_id, step, op)\n"
    "            VALUES (m[1], m[2], 'compensation') ON CONFLICT DO NOTHING;\n"
    "        GET DIAGNOSTICS n_self = ROW_COUNT;\n"
    "        RETURN n_self = 1 AND n_action = 0;\n"
    "    END IF;\n"
    "    INSERT INTO saga_barrier (saga_id, step, op)\n"
    "        VALUES (m[1], m[2], kind) ON CONFLICT DO NOTHING;\n"
    "    GET DIAGNOSTICS n_self = ROW_COUNT;\n"
    "    RETURN n_self = 1;\n"
    "END\n"
    "$$;\n";

static bool ident_ok(const char *s, size_t len) {
    if (len == 0 || len > IDENT_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool saga_relay_table_valid(const char *table) {
    if (table == NULL)
        return false;
    const char *dot = strchr(table, '.');
    if (dot == NULL)
        return ident_ok(table, strlen(table));
    return ident_ok(table, (size_t)(dot - table)) && ident_ok(dot + 1, strlen(dot + 1));
}

char *saga_relay_schema(const char *table) {
    if (!saga_relay_table_valid(table))
        return NULL;
    const char *dot = strchr(table, '.');
    const char *base = dot != NULL ? dot + 1 : table;
    size_t tl = strlen(table), bl = strlen(base), cap = sizeof(schema_text);
    for (const char *p = schema_text; (p = strchr(p, '{')) != NULL; p++)
        cap += tl; /* generous: each placeholder grows by at most the table's length */
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (const char *p = schema_text; *p != '\0'; p++) {
        if (p[0] == '{' && (p[1] == 'T' || p[1] == 'B') && p[2] == '}') {
            memcpy(out + o, p[1] == 'T' ? table : base, p[1] == 'T' ? tl : bl);
            o += p[1] == 'T' ? tl : bl;
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}
