/*-------------------------------------------------------------------------
 *
 * sqlapi.c
 *	  The SQL-callable functions of notify_ext.
 *
 * Every function first checks that the library was preloaded, then
 * validates its arguments exactly as core's pg_notify()/LISTEN do (same
 * messages and SQLSTATEs) and hands the request to xact.c, which acts at
 * commit.  Channels are compared byte for byte, as pg_notify() does.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "fmgr.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "tcop/dest.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ext_notify);
PG_FUNCTION_INFO_V1(ext_listen);
PG_FUNCTION_INFO_V1(ext_unlisten);
PG_FUNCTION_INFO_V1(ext_unlisten_all);
PG_FUNCTION_INFO_V1(ext_listening_channels);
PG_FUNCTION_INFO_V1(ext_notification_queue_usage);
PG_FUNCTION_INFO_V1(ext_listeners);
PG_FUNCTION_INFO_V1(ext_notification_stats);
PG_FUNCTION_INFO_V1(ext_listen_pattern);
PG_FUNCTION_INFO_V1(ext_unlisten_pattern);
PG_FUNCTION_INFO_V1(ext_listening_patterns);

/*
 * Core's rules for a channel name: not empty, shorter than NAMEDATALEN,
 * valid in the database encoding.
 */
void
ne_validate_channel(const char *channel)
{
	size_t		len = channel ? strlen(channel) : 0;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel name cannot be empty")));
	if (len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel name too long")));
	(void) pg_verifymbstr(channel, (int) len, false);
}

/* notify_ext.max_payload_size: payloads must be shorter (core: 8000) */
int			ne_max_payload_size = NE_CORE_PAYLOAD_LIMIT;

/*
 * Core's check and error, against notify_ext.max_payload_size; every way
 * in calls it (ext_notify, and in drop-in mode pg_notify and NOTIFY).
 */
void
ne_check_payload(const char *payload)
{
	if (strlen(payload) >= (size_t) ne_max_payload_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload string too long"),
				 errhint("notify_ext.max_payload_size is %d bytes; a payload must be shorter.",
						 ne_max_payload_size)));
}

static char *
ne_channel_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *channel = NULL;

	if (!PG_ARGISNULL(argno))
		channel = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	ne_validate_channel(channel);
	return channel;
}

Datum
ext_notify(PG_FUNCTION_ARGS)
{
	char	   *channel;
	char	   *payload = "";

	ne_check_preloaded();
	channel = ne_channel_arg(fcinfo, 0);
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
	{
		payload = text_to_cstring(PG_GETARG_TEXT_PP(1));
		ne_check_payload(payload);
		(void) pg_verifymbstr(payload, (int) strlen(payload), false);
	}

	ne_add_notify(channel, payload);
	PG_RETURN_VOID();
}

Datum
ext_listen(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	if (whereToSendOutput != DestRemote)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("notify_ext: only sessions connected to a client can listen")));
	ne_add_listen_action(NE_ACTION_LISTEN, ne_channel_arg(fcinfo, 0));
	PG_RETURN_VOID();
}

Datum
ext_unlisten(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	ne_add_listen_action(NE_ACTION_UNLISTEN, ne_channel_arg(fcinfo, 0));
	PG_RETURN_VOID();
}

Datum
ext_unlisten_all(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	ne_add_listen_action(NE_ACTION_UNLISTEN_ALL, NULL);
	PG_RETURN_VOID();
}

Datum
ext_listening_channels(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *channels;
	ListCell   *lc;

	ne_check_preloaded();
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	channels = ne_registry_listening_channels();
	foreach(lc, channels)
	{
		NeLocalChannel *ch = lfirst(lc);
		Datum		value = CStringGetTextDatum(ch->channel);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	list_free(channels);
	return (Datum) 0;
}

Datum
ext_notification_queue_usage(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	PG_RETURN_FLOAT8(ne_queue_usage());
}

/*
 * ext_listeners(): every (backend, database, channel) in the shared
 * listener table.  Monitoring only; it shows LISTENs of all databases.
 */
Datum
ext_listeners(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *listeners;
	ListCell   *lc;

	ne_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	listeners = ne_registry_snapshot();
	foreach(lc, listeners)
	{
		NeListenerInfo *info = lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		char	   *dbname = get_database_name(info->dboid);

		values[0] = Int32GetDatum(info->pid);
		if (dbname != NULL)
			values[1] = CStringGetTextDatum(dbname);
		else
			nulls[1] = true;
		values[2] = CStringGetTextDatum(info->channel);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	list_free_deep(listeners);
	return (Datum) 0;
}

/*
 * ext_notification_stats(): cluster-wide counters since server start.
 */
Datum
ext_notification_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	ne_check_preloaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&ne_shared->notificationsCommitted));
	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	values[1] = Int64GetDatum((int64) ne_shared->batchesPublished);
	values[2] = Int64GetDatum((int64) ne_shared->notificationsPublished);
	LWLockRelease(ne_shared->queueLock);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Pattern subscriptions (pattern.c): LIKE syntax over channel names.
 */
static char *
ne_pattern_arg(FunctionCallInfo fcinfo)
{
	char	   *pattern = NULL;

	if (!PG_ARGISNULL(0))
		pattern = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ne_validate_pattern(pattern);
	return pattern;
}

Datum
ext_listen_pattern(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	if (whereToSendOutput != DestRemote)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("notify_ext: only sessions connected to a client can listen")));
	ne_add_listen_action(NE_ACTION_LISTEN_PATTERN, ne_pattern_arg(fcinfo));
	PG_RETURN_VOID();
}

Datum
ext_unlisten_pattern(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	ne_add_listen_action(NE_ACTION_UNLISTEN_PATTERN, ne_pattern_arg(fcinfo));
	PG_RETURN_VOID();
}

Datum
ext_listening_patterns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *patterns;
	ListCell   *lc;

	ne_check_preloaded();
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	patterns = ne_pattern_listening();
	foreach(lc, patterns)
	{
		Datum		value = CStringGetTextDatum((char *) lfirst(lc));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	list_free_deep(patterns);
	return (Datum) 0;
}
