/*-------------------------------------------------------------------------
 *
 * intercept.c
 *	  Drop-in mode: core's LISTEN / UNLISTEN / NOTIFY statements and
 *	  pg_notify() / pg_listening_channels() / pg_notification_queue_usage()
 *	  served by notify_ext, plus DISCARD ALL in every mode.
 *
 * Statements: a ProcessUtility hook.  With notify_ext.intercept on, in a
 * database where the extension is created, ListenStmt / UnlistenStmt /
 * NotifyStmt never reach core: they get core's checks (recovery, parallel
 * mode, security-restricted operations, background processes) and are
 * queued in xact.c like the ext_* functions.  NOTIFY actions of rules reach
 * the same hook.
 *
 * Functions: a planner hook swaps the function OIDs of core's three
 * functions for those of ext_notify / ext_listening_channels /
 * ext_notification_queue_usage in the query tree before planning (same
 * argument and result types).  Everything planned goes through it: top
 * level, prepared and extended-protocol statements, PL/pgSQL, SQL-function
 * bodies, views and rules.  SQL functions are normally inlined during
 * planning, after our walk; so that their bodies are planned on their own
 * (and swapped), needs_fmgr_hook answers "yes" for SQL functions whose body
 * mentions one of the three, which keeps the planner from inlining them.
 * Changing notify_ext.intercept resets the plan cache.
 *
 * Whether the extension exists, and its function OIDs, are cached per
 * backend and forgotten on any pg_proc invalidation.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

bool		ne_intercept = false;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static planner_hook_type prev_planner = NULL;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;

/* per-backend cache of the extension's functions in this database */
static bool cache_valid = false;
static bool cache_callback_registered = false;
static Oid	fn_notify = InvalidOid;
static Oid	fn_listening = InvalidOid;
static Oid	fn_usage = InvalidOid;
static HTAB *sqlfunc_cache = NULL;	/* SQL function oid -> mentions core fn */

typedef struct NeSqlFuncEntry
{
	Oid			funcid;
	bool		mentions;
} NeSqlFuncEntry;

static void
ne_proc_inval(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
			  uint32 hashvalue pg_attribute_unused())
{
	cache_valid = false;
	if (sqlfunc_cache != NULL)
	{
		hash_destroy(sqlfunc_cache);
		sqlfunc_cache = NULL;
	}
}

/* get_extension_schema() is not exported before PostgreSQL 16 */
static Oid
ne_extension_schema(Oid extoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		result = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

static Oid
ne_lookup_function(const char *schema, const char *name, int nargs, Oid *argtypes)
{
	List	   *qname = list_make2(makeString(pstrdup(schema)),
								   makeString(pstrdup(name)));

	return LookupFuncName(qname, nargs, argtypes, true);
}

/*
 * Is drop-in mode in force here?  Needs a transaction (catalog lookups).
 */
static bool
ne_intercept_active(void)
{
	if (!ne_intercept || ne_shared == NULL || !IsTransactionState())
		return false;

	if (!cache_callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, ne_proc_inval, (Datum) 0);
		cache_callback_registered = true;
	}

	if (!cache_valid)
	{
		Oid			extoid = get_extension_oid("notify_ext", true);

		fn_notify = fn_listening = fn_usage = InvalidOid;
		if (OidIsValid(extoid))
		{
			char	   *schema = get_namespace_name(ne_extension_schema(extoid));
			Oid			two_text[2] = {TEXTOID, TEXTOID};

			if (schema != NULL)
			{
				fn_notify = ne_lookup_function(schema, "ext_notify", 2, two_text);
				fn_listening = ne_lookup_function(schema, "ext_listening_channels", 0, NULL);
				fn_usage = ne_lookup_function(schema, "ext_notification_queue_usage", 0, NULL);
			}
		}
		cache_valid = true;
	}
	return OidIsValid(fn_notify) && OidIsValid(fn_listening) && OidIsValid(fn_usage);
}

/* ----------------------------------------------------------------
 * Statements
 * ----------------------------------------------------------------
 */

static bool
ne_intercept_statement(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_NotifyStmt:
			{
				NotifyStmt *n = (NotifyStmt *) stmt;
				const char *payload = n->payload ? n->payload : "";

				PreventCommandDuringRecovery("NOTIFY");
				PreventCommandIfParallelMode("NOTIFY");
				ne_validate_channel(n->conditionname);
				ne_check_payload(payload);
				ne_add_notify(n->conditionname, payload);
				return true;
			}
		case T_ListenStmt:
			{
				ListenStmt *l = (ListenStmt *) stmt;

				PreventCommandIfParallelMode("LISTEN");
				ne_check_listen_allowed("LISTEN", true);
				ne_validate_channel(l->conditionname);
				ne_add_listen_action(NE_ACTION_LISTEN, l->conditionname);
				return true;
			}
		case T_UnlistenStmt:
			{
				UnlistenStmt *u = (UnlistenStmt *) stmt;

				PreventCommandIfParallelMode("UNLISTEN");
				ne_check_listen_allowed("UNLISTEN", false);
				if (u->conditionname)
				{
					ne_validate_channel(u->conditionname);
					ne_add_listen_action(NE_ACTION_UNLISTEN, u->conditionname);
				}
				else
					ne_add_listen_action(NE_ACTION_UNLISTEN_ALL, NULL);
				return true;
			}
		default:
			return false;
	}
}

static void
ne_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if ((IsA(stmt, NotifyStmt) || IsA(stmt, ListenStmt) || IsA(stmt, UnlistenStmt)) &&
		ne_intercept_active() && ne_intercept_statement(stmt))
		return;

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/* DISCARD ALL ends our listens too, in any mode */
	if (IsA(stmt, DiscardStmt) &&
		((DiscardStmt *) stmt)->target == DISCARD_ALL &&
		ne_shared != NULL)
		ne_add_listen_action(NE_ACTION_UNLISTEN_ALL, NULL);
}

/* ----------------------------------------------------------------
 * Functions
 * ----------------------------------------------------------------
 */

static bool
ne_swap_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) node;

		switch (f->funcid)
		{
			case F_PG_NOTIFY:
				f->funcid = fn_notify;
				break;
			case F_PG_LISTENING_CHANNELS:
				f->funcid = fn_listening;
				break;
			case F_PG_NOTIFICATION_QUEUE_USAGE:
				f->funcid = fn_usage;
				break;
			default:
				break;
		}
	}
	else if (IsA(node, Query))
		return query_tree_walker((Query *) node, ne_swap_walker, context, 0);
	return expression_tree_walker(node, ne_swap_walker, context);
}

static PlannedStmt *
ne_planner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	if (ne_intercept_active())
		(void) query_tree_walker(parse, ne_swap_walker, NULL, 0);

	if (prev_planner)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/*
 * Does this SQL function's body call one of core's three functions?  Then it
 * must not be inlined (see the file header).  Cached per function.
 */
static bool
ne_sqlfunc_mentions_core(Oid funcid)
{
	NeSqlFuncEntry *entry;
	bool		found;
	HeapTuple	tup;
	bool		mentions = false;

	if (sqlfunc_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(NeSqlFuncEntry);
		ctl.hcxt = CacheMemoryContext;
		sqlfunc_cache = hash_create("notify_ext SQL functions", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(sqlfunc_cache, &funcid, HASH_FIND, &found);
	if (found)
		return entry->mentions;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (proc->prolang == SQLlanguageId)
		{
			bool		isnull;
			Datum		d;

			d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
			if (!isnull)
			{
				char	   *src = TextDatumGetCString(d);

				mentions = (strstr(src, "pg_notify") != NULL ||
							strstr(src, "pg_listening_channels") != NULL ||
							strstr(src, "pg_notification_queue_usage") != NULL);
				pfree(src);
			}
			d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosqlbody, &isnull);
			if (!isnull && !mentions)
			{
				char	   *body = TextDatumGetCString(d);
				char		pat[3][32];

				snprintf(pat[0], sizeof(pat[0]), ":funcid %u ", F_PG_NOTIFY);
				snprintf(pat[1], sizeof(pat[1]), ":funcid %u ", F_PG_LISTENING_CHANNELS);
				snprintf(pat[2], sizeof(pat[2]), ":funcid %u ", F_PG_NOTIFICATION_QUEUE_USAGE);
				mentions = (strstr(body, pat[0]) != NULL ||
							strstr(body, pat[1]) != NULL ||
							strstr(body, pat[2]) != NULL);
				pfree(body);
			}
		}
		ReleaseSysCache(tup);
	}

	/* the cache may have been reset by an invalidation meanwhile */
	if (sqlfunc_cache != NULL)
	{
		entry = hash_search(sqlfunc_cache, &funcid, HASH_ENTER, NULL);
		entry->mentions = mentions;
	}
	return mentions;
}

static bool
ne_needs_fmgr_hook(Oid fn_oid)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid))
		return true;
	if (fn_oid < FirstNormalObjectId || !ne_intercept_active())
		return false;
	return ne_sqlfunc_mentions_core(fn_oid);
}

/*
 * Plans made in one mode must not be reused in the other.
 */
static void
ne_intercept_assign(bool newval, void *extra pg_attribute_unused())
{
	if (newval != ne_intercept)
		ResetPlanCache();
}

void
ne_intercept_init(void)
{
	DefineCustomBoolVariable("notify_ext.intercept",
							 "Serve core's LISTEN, UNLISTEN, NOTIFY and pg_notify() by notify_ext.",
							 "Applies in databases where the extension is created. "
							 "Superusers only (ALTER SYSTEM, ALTER DATABASE/ROLE SET, SET).",
							 &ne_intercept,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, ne_intercept_assign, NULL);

	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ne_ProcessUtility;
	prev_planner = planner_hook;
	planner_hook = ne_planner;
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = ne_needs_fmgr_hook;	/* fmgr_hook itself is not needed */
}
