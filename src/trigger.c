/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  ext_notify_trigger(): a ready-made trigger function for table-change
 *	  notifications.
 *
 * Channel: the first trigger argument, else the table's name.
 *
 * FOR EACH ROW, the payload is the JSON object of the common PL/pgSQL
 * recipe (json_build_object + row_to_json):
 *	  {"timestamp": ..., "level": "row", "action": "INSERT|UPDATE|DELETE",
 *	   "schema": ..., "table": ..., "record": NEW or null, "old": OLD or null}
 * FOR EACH STATEMENT, one notification per statement:
 *	  {"timestamp": ..., "level": "statement", "action": ..., "schema": ...,
 *	   "table": ..., "rows": N}
 * where N counts the transition table (REFERENCING NEW/OLD TABLE), or is null
 * when the trigger declares none (a statement trigger cannot know it then).
 *
 * A row payload that would reach notify_ext.max_payload_size (8000 bytes,
 * core's limit, by default) must not abort the
 * user's write: it is replaced by
 *	  {..., "truncated": true, "record_key": {pk of NEW}, "old_key": {pk of OLD}}
 * using the primary key (else the replica identity index); if even that is
 * too long, or the table has neither, the keys are left out.
 *
 * "timestamp" is the transaction's start time, as now() gives, in JSON's
 * ISO 8601 form.  Works BEFORE or AFTER; a BEFORE ROW trigger returns the
 * row unchanged.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ext_notify_trigger);

/* row_to_json() of a tuple */
static char *
ne_tuple_json(HeapTuple tuple, TupleDesc tupdesc)
{
	Datum		d = heap_copy_tuple_as_datum(tuple, tupdesc);

	return text_to_cstring(DatumGetTextPP(DirectFunctionCall1(row_to_json, d)));
}

/* JSON object of the tuple's key columns, or NULL if the table has no key */
static char *
ne_key_json(Relation rel, HeapTuple tuple)
{
	Oid			indexoid = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	TupleDesc	keydesc;
	Datum	   *values;
	bool	   *nulls;
	int			nkeys;
	char	   *result;

	if (!OidIsValid(indexoid))
		indexoid = RelationGetReplicaIndex(rel);
	if (!OidIsValid(indexoid))
		return NULL;

	idx = index_open(indexoid, AccessShareLock);
	nkeys = idx->rd_index->indnkeyatts;
	keydesc = CreateTemplateTupleDesc(nkeys);
	values = palloc(sizeof(Datum) * nkeys);
	nulls = palloc(sizeof(bool) * nkeys);
	for (int i = 0; i < nkeys; i++)
	{
		AttrNumber	attnum = idx->rd_index->indkey.values[i];

		TupleDescCopyEntry(keydesc, i + 1, tupdesc, attnum);
		values[i] = heap_getattr(tuple, attnum, tupdesc, &nulls[i]);
	}
	index_close(idx, AccessShareLock);

	keydesc = BlessTupleDesc(keydesc);
	result = ne_tuple_json(heap_form_tuple(keydesc, values, nulls), keydesc);
	return result;
}

static void
ne_json_field(StringInfo buf, const char *name, const char *json)
{
	appendStringInfoString(buf, ", ");
	escape_json(buf, name);
	appendStringInfoString(buf, ": ");
	appendStringInfoString(buf, json ? json : "null");
}

static void
ne_json_head(StringInfo buf, const char *level, const char *action,
			 Relation rel)
{
	char		ts[MAXDATELEN + 1];

	initStringInfo(buf);
	appendStringInfoString(buf, "{\"timestamp\": \"");
	appendStringInfoString(buf,
						   JsonEncodeDateTime(ts,
											  TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
											  TIMESTAMPTZOID, NULL));
	appendStringInfoString(buf, "\", \"level\": ");
	escape_json(buf, level);
	appendStringInfoString(buf, ", \"action\": ");
	escape_json(buf, action);
	appendStringInfoString(buf, ", \"schema\": ");
	escape_json(buf, get_namespace_name(RelationGetNamespace(rel)));
	appendStringInfoString(buf, ", \"table\": ");
	escape_json(buf, RelationGetRelationName(rel));
}

Datum
ext_notify_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	Relation	rel;
	const char *channel;
	const char *action;
	HeapTuple	newtup = NULL;
	HeapTuple	oldtup = NULL;
	StringInfoData buf;
	Datum		result = PointerGetDatum(NULL);

	ne_check_preloaded();
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ext_notify_trigger: not called by trigger manager")));

	td = (TriggerData *) fcinfo->context;
	rel = td->tg_relation;
	channel = td->tg_trigger->tgnargs > 0 ? td->tg_trigger->tgargs[0]
		: RelationGetRelationName(rel);
	ne_validate_channel(channel);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		action = "INSERT";
		newtup = td->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		action = "UPDATE";
		oldtup = td->tg_trigtuple;
		newtup = td->tg_newtuple;
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		action = "DELETE";
		oldtup = td->tg_trigtuple;
	}
	else
		action = "TRUNCATE";

	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
	{
		TupleDesc	tupdesc = RelationGetDescr(rel);

		ne_json_head(&buf, "row", action, rel);
		ne_json_field(&buf, "record", newtup ? ne_tuple_json(newtup, tupdesc) : NULL);
		ne_json_field(&buf, "old", oldtup ? ne_tuple_json(oldtup, tupdesc) : NULL);
		appendStringInfoChar(&buf, '}');

		if (buf.len >= ne_max_payload_size)
		{
			char	   *newkey = newtup ? ne_key_json(rel, newtup) : NULL;
			char	   *oldkey = oldtup ? ne_key_json(rel, oldtup) : NULL;

			ne_json_head(&buf, "row", action, rel);
			appendStringInfoString(&buf, ", \"truncated\": true");
			ne_json_field(&buf, "record_key", newkey);
			ne_json_field(&buf, "old_key", oldkey);
			appendStringInfoChar(&buf, '}');
			if (buf.len >= ne_max_payload_size)
			{
				ne_json_head(&buf, "row", action, rel);
				appendStringInfoString(&buf, ", \"truncated\": true}");
			}
		}

		if (TRIGGER_FIRED_BEFORE(td->tg_event))
			result = PointerGetDatum(newtup ? newtup : oldtup);
	}
	else
	{
		char		rows[32];
		Tuplestorestate *ts = td->tg_newtable ? td->tg_newtable : td->tg_oldtable;

		ne_json_head(&buf, "statement", action, rel);
		if (ts != NULL)
		{
			snprintf(rows, sizeof(rows), INT64_FORMAT, tuplestore_tuple_count(ts));
			ne_json_field(&buf, "rows", rows);
		}
		else
			ne_json_field(&buf, "rows", NULL);
		appendStringInfoChar(&buf, '}');
	}

	ne_add_notify(channel, buf.data);
	pfree(buf.data);
	return result;
}
