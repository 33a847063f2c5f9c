/*-------------------------------------------------------------------------
 *
 * utility.c
 *	  Utility-statement interception.
 *
 * DISCARD ALL ends every LISTEN of the session, core's and ours: after core
 * has run it (and accepted it: it refuses to run in a transaction block), we
 * queue an UNLISTEN * that takes effect when its transaction commits.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "nodes/parsenodes.h"
#include "tcop/utility.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void
ne_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (IsA(stmt, DiscardStmt) &&
		((DiscardStmt *) stmt)->target == DISCARD_ALL &&
		ne_shared != NULL)
		ne_add_listen_action(NE_ACTION_UNLISTEN_ALL, NULL);
}

void
ne_utility_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ne_ProcessUtility;
}
