/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  Transaction state: what the current transaction notifies and listens
 *	  to, and the transaction callbacks that publish it.
 *
 * Buffers (all in TopTransactionContext, gone with the transaction):
 *	  - pending notifications, in the order sent, without duplicates of
 *		(channel, payload); a hash makes the duplicate test O(1) once the list
 *		is long.  They are packed one after the other into blocks (an arena:
 *		no allocator header or power-of-two rounding per notification, so a
 *		million of them take less memory than core's list), and a
 *		subtransaction abort gives the tail back;
 *	  - pending LISTEN / UNLISTEN / UNLISTEN * actions, in order.
 *	  Each entry records the subtransaction that made it.  Subtransaction IDs
 *	  grow, and everything made after a subtransaction started belongs to it
 *	  or its children, so aborting subtransaction S drops exactly the tail of
 *	  entries whose subid >= S; releasing it changes nothing.
 *
 * Callbacks:
 *	  PRE_COMMIT  deliver what an idle wake-up brought (if this is one), then
 *				  register new LISTENs, then publish the batch; may ERROR.
 *	  COMMIT	  flip the batch to COMMITTED, wake its listeners, confirm
 *				  LISTENs, apply UNLISTENs; cannot fail.
 *	  ABORT		  flip the batch to ABORTED (and wake its listeners so they
 *				  skip it), undo LISTEN registrations; cannot fail.
 *	  PRE_PREPARE refuse PREPARE TRANSACTION if anything is pending.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "tcop/dest.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/memutils.h"

#define NE_DEDUPE_HASH_THRESHOLD 16

typedef struct NeListenAction
{
	SubTransactionId subid;
	int			action;
	char		channel[NE_PATTERN_MAXLEN];	/* channel or pattern, zero-padded */
} NeListenAction;

#define NE_IS_PATTERN_ACTION(a) \
	((a) == NE_ACTION_LISTEN_PATTERN || (a) == NE_ACTION_UNLISTEN_PATTERN)

/* the arena of pending notifications: a stack of blocks */
typedef struct NeArenaBlock
{
	struct NeArenaBlock *prev;
	Size		size;			/* bytes of data[] */
	Size		used;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} NeArenaBlock;

#define NE_ARENA_MIN_BLOCK	(32 * 1024)
#define NE_ARENA_MAX_BLOCK	(1024 * 1024)

static NeArenaBlock *arenaTop = NULL;

/* buffered by the running transaction */
static NePendingNotify **pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static HTAB *pendingHash = NULL;

static NeListenAction *actions = NULL;
static int	nactions = 0;
static int	maxactions = 0;

/* decided at PRE_COMMIT, carried out at COMMIT or ABORT */
static bool precommitDone = false;
static uint64 publishedPos = NE_INVALID_POS;
static int *wakeSlots = NULL;
static int	nwake = 0;
static char **toAdd = NULL;
static int	ntoAdd = 0;
static char **toRemove = NULL;
static int	ntoRemove = 0;
static char **toAddPat = NULL;
static int	ntoAddPat = 0;
static char **toRemovePat = NULL;
static int	ntoRemovePat = 0;

static void
ne_reset_xact_state(void)
{
	/* the memory itself goes with TopTransactionContext */
	arenaTop = NULL;
	pending = NULL;
	npending = maxpending = 0;
	pendingHash = NULL;
	actions = NULL;
	nactions = maxactions = 0;
	precommitDone = false;
	publishedPos = NE_INVALID_POS;
	wakeSlots = NULL;
	nwake = 0;
	toAdd = toRemove = NULL;
	ntoAdd = ntoRemove = 0;
	toAddPat = toRemovePat = NULL;
	ntoAddPat = ntoRemovePat = 0;
}

static uint32
ne_notify_hash(const void *key, Size keysize pg_attribute_unused())
{
	const NePendingNotify *n = *(NePendingNotify *const *) key;

	return hash_bytes((const unsigned char *) n->data,
					  n->channelLen + n->payloadLen + 2);
}

static int
ne_notify_match(const void *key1, const void *key2,
				Size keysize pg_attribute_unused())
{
	const NePendingNotify *a = *(NePendingNotify *const *) key1;
	const NePendingNotify *b = *(NePendingNotify *const *) key2;

	if (a->channelLen != b->channelLen || a->payloadLen != b->payloadLen)
		return 1;
	return memcmp(a->data, b->data, a->channelLen + a->payloadLen + 2);
}

static void
ne_build_pending_hash(void)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(NePendingNotify *);
	ctl.entrysize = sizeof(NePendingNotify *);
	ctl.hash = ne_notify_hash;
	ctl.match = ne_notify_match;
	ctl.hcxt = TopTransactionContext;
	pendingHash = hash_create("notify_ext pending notifications",
							  256, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	for (int i = 0; i < npending; i++)
		(void) hash_search(pendingHash, &pending[i], HASH_ENTER, NULL);
}

static void
ne_check_can_queue(void)
{
	if (precommitDone)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("notify_ext: cannot queue notifications or LISTEN while the transaction is committing")));
}

/*
 * Room for len bytes at the top of the arena (not yet taken: see
 * ne_arena_take).  Blocks double up to 1MB; a larger request gets a block
 * of its own.
 */
static char *
ne_arena_room(Size len)
{
	NeArenaBlock *b = arenaTop;

	len = INTALIGN(len);		/* what ne_arena_take will take */
	if (b == NULL || b->size - b->used < len)
	{
		Size		size = b == NULL ? NE_ARENA_MIN_BLOCK :
			Min(b->size * 2, NE_ARENA_MAX_BLOCK);

		size = Max(size, len);
		b = MemoryContextAllocHuge(TopTransactionContext,
								   offsetof(NeArenaBlock, data) + size);
		b->prev = arenaTop;
		b->size = size;
		b->used = 0;
		arenaTop = b;
	}
	return b->data + b->used;
}

static inline void
ne_arena_take(Size len)
{
	arenaTop->used += INTALIGN(len);
}

/* give back everything from p (an entry in the arena) on */
static void
ne_arena_truncate(char *p)
{
	while (arenaTop != NULL &&
		   !(p >= arenaTop->data && p <= arenaTop->data + arenaTop->used))
	{
		NeArenaBlock *prev = arenaTop->prev;

		pfree(arenaTop);
		arenaTop = prev;
	}
	if (arenaTop != NULL)
		arenaTop->used = p - arenaTop->data;
}

/*
 * ext_notify(): buffer one notification (arguments already validated).
 */
void
ne_add_notify(const char *channel, const char *payload)
{
	Size		clen = strlen(channel);
	Size		plen = strlen(payload);
	NePendingNotify *n;
	MemoryContext old;

	if (IsParallelWorker())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot send notifications from a parallel worker")));
	/* every path (ext_notify, pg_notify and NOTIFY in drop-in mode, triggers) */
	PreventCommandDuringRecovery("NOTIFY");
	if (strcmp(channel, NE_GAP_CHANNEL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("channel \"%s\" is reserved for notify_ext's gap signal", NE_GAP_CHANNEL),
				 errdetail("Only notify_ext sends on it, to a session that missed notifications.")));
	ne_check_can_queue();

	old = MemoryContextSwitchTo(TopTransactionContext);

	/* built at the top of the arena, taken only if it is no duplicate */
	n = (NePendingNotify *) ne_arena_room(offsetof(NePendingNotify, data) + clen + plen + 2);
	n->subid = GetCurrentSubTransactionId();
	n->channelLen = (uint16) clen;
	n->payloadLen = (uint32) plen;
	memcpy(NE_PN_CHANNEL(n), channel, clen + 1);
	memcpy(NE_PN_PAYLOAD(n), payload, plen + 1);

	/* a duplicate of an earlier (channel, payload) is dropped */
	if (pendingHash != NULL)
	{
		bool		found;

		(void) hash_search(pendingHash, &n, HASH_FIND, &found);
		if (found)
		{
			MemoryContextSwitchTo(old);
			return;
		}
	}
	else
	{
		for (int i = 0; i < npending; i++)
		{
			if (ne_notify_match(&n, &pending[i], 0) == 0)
			{
				MemoryContextSwitchTo(old);
				return;
			}
		}
	}

	if (npending == maxpending)
	{
		maxpending = Max(16, maxpending * 2);
		if (pending == NULL)
			pending = palloc(sizeof(NePendingNotify *) * maxpending);
		else
			pending = repalloc_huge(pending, sizeof(NePendingNotify *) * maxpending);
	}
	ne_arena_take(offsetof(NePendingNotify, data) + clen + plen + 2);
	pending[npending++] = n;

	if (pendingHash != NULL)
		(void) hash_search(pendingHash, &n, HASH_ENTER, NULL);
	else if (npending >= NE_DEDUPE_HASH_THRESHOLD)
		ne_build_pending_hash();

	MemoryContextSwitchTo(old);
}

/*
 * Core's checks for LISTEN / UNLISTEN (utility.c), for every path that
 * reaches us: the ext_* functions as well as the intercepted statements.
 * LISTEN: allowed on a hot standby (unlike core: walrec.c), not in a
 * security-restricted operation, only in a regular backend (a
 * walsender or a background worker never drains, and would hold the queue
 * back).  UNLISTEN: not in a security-restricted operation.
 */
void
ne_check_listen_allowed(const char *cmdname, bool listen)
{
	/* LISTEN on a hot standby: notifications come through the WAL */
	if (listen && RecoveryInProgress())
		ne_wal_listen_notice();
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		/* translator: %s is name of a SQL command, eg PREPARE */
				 errmsg("cannot execute %s within security-restricted operation",
						cmdname)));
	if (listen && MyBackendType != B_BACKEND)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		/* translator: %s is name of a SQL command, eg LISTEN */
				 errmsg("cannot execute %s within a background process",
						cmdname)));
}

/*
 * ext_listen() / ext_unlisten() / ext_unlisten_all() / DISCARD ALL.
 */
void
ne_add_listen_action(int action, const char *channel)
{
	NeListenAction *a;

	if (IsParallelWorker())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot listen or unlisten in a parallel worker")));
	ne_check_listen_allowed((action == NE_ACTION_LISTEN ||
							 action == NE_ACTION_LISTEN_PATTERN) ? "LISTEN" : "UNLISTEN",
							action == NE_ACTION_LISTEN ||
							action == NE_ACTION_LISTEN_PATTERN);
	ne_check_can_queue();

	if (nactions == maxactions)
	{
		maxactions = Max(8, maxactions * 2);
		if (actions == NULL)
			actions = MemoryContextAlloc(TopTransactionContext,
										 sizeof(NeListenAction) * maxactions);
		else
			actions = repalloc(actions, sizeof(NeListenAction) * maxactions);
	}
	a = &actions[nactions++];
	a->subid = GetCurrentSubTransactionId();
	a->action = action;
	memset(a->channel, 0, NE_PATTERN_MAXLEN);
	if (channel != NULL)
		strlcpy(a->channel, channel,
				NE_IS_PATTERN_ACTION(action) ? NE_PATTERN_MAXLEN : NAMEDATALEN);
}

/* (kind, channel or pattern) -> index of its last action (ne_plan_listen_changes) */
typedef struct NeLastActionKey
{
	char		name[NE_PATTERN_MAXLEN];	/* zero-padded */
	bool		pattern;
} NeLastActionKey;

typedef struct NeLastAction
{
	NeLastActionKey key;
	int			last;
} NeLastAction;

static NeLastAction *
ne_last_action(HTAB *h, const NeListenAction *a, HASHACTION op)
{
	NeLastActionKey key;

	memset(&key, 0, sizeof(key));
	memcpy(key.name, a->channel, NE_PATTERN_MAXLEN);
	key.pattern = NE_IS_PATTERN_ACTION(a->action);
	return hash_search(h, &key, op, NULL);
}

/*
 * Work out, from the ordered actions, which channels and patterns to add
 * (now) and which to remove (at commit).  The final state of each channel
 * and each pattern is decided by its last action: a LISTEN after the last
 * UNLISTEN *, or not.  Linear in the number of actions (one hash of each
 * name's last action) and interruptible: this runs at PRE_COMMIT, before
 * the point of no return.  A session that would end up listening on more
 * channels than notify_ext.max_channels fails here, before anything is
 * registered.
 */
static void
ne_plan_listen_changes(void)
{
	int			lastAll = -1;
	HASHCTL		ctl;
	HTAB	   *lastAction;
	long		nlocal;
	int			nnew = 0;

	for (int i = 0; i < nactions; i++)
	{
		if (actions[i].action == NE_ACTION_UNLISTEN_ALL)
			lastAll = i;
	}

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(NeLastActionKey);
	ctl.entrysize = sizeof(NeLastAction);
	ctl.hcxt = CurrentMemoryContext;
	lastAction = hash_create("notify_ext listen actions",
							 Min(nactions, 1024), &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < nactions; i++)
	{
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		if (actions[i].action == NE_ACTION_UNLISTEN_ALL)
			continue;
		ne_last_action(lastAction, &actions[i], HASH_ENTER)->last = i;
	}

	/* additions, in the order of their (last) LISTEN */
	toAdd = palloc(sizeof(char *) * (nactions + 1));
	ntoAdd = 0;
	toAddPat = palloc(sizeof(char *) * (nactions + 1));
	ntoAddPat = 0;
	for (int i = lastAll + 1; i < nactions; i++)
	{
		NeLastAction *la;

		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		if (actions[i].action != NE_ACTION_LISTEN &&
			actions[i].action != NE_ACTION_LISTEN_PATTERN)
			continue;
		la = ne_last_action(lastAction, &actions[i], HASH_FIND);
		if (la == NULL || la->last != i)
			continue;
		if (actions[i].action == NE_ACTION_LISTEN_PATTERN)
			toAddPat[ntoAddPat++] = actions[i].channel;
		else
		{
			toAdd[ntoAdd++] = actions[i].channel;
			if (ne_local_lookup(actions[i].channel) == NULL)
				nnew++;
		}
	}

	/* removals: every current one not re-listened, or the UNLISTENed */
	if (lastAll >= 0)
	{
		List	   *cur = ne_registry_listening_channels();
		List	   *curPat = ne_pattern_listening();
		ListCell   *lc;
		NeListenAction probe;

		toRemove = palloc(sizeof(char *) * (list_length(cur) + 1));
		ntoRemove = 0;
		foreach(lc, cur)
		{
			NeLocalChannel *ch = lfirst(lc);
			NeLastAction *la;

			memset(&probe, 0, sizeof(probe));
			probe.action = NE_ACTION_LISTEN;
			strlcpy(probe.channel, ch->channel, NAMEDATALEN);
			la = ne_last_action(lastAction, &probe, HASH_FIND);
			if (la == NULL || la->last < lastAll ||
				actions[la->last].action != NE_ACTION_LISTEN)
				toRemove[ntoRemove++] = pstrdup(ch->channel);
		}
		list_free(cur);
		toRemovePat = palloc(sizeof(char *) * (list_length(curPat) + 1));
		ntoRemovePat = 0;
		foreach(lc, curPat)
		{
			char	   *pat = lfirst(lc);
			NeLastAction *la;

			memset(&probe, 0, sizeof(probe));
			probe.action = NE_ACTION_LISTEN_PATTERN;
			strlcpy(probe.channel, pat, NE_PATTERN_MAXLEN);
			la = ne_last_action(lastAction, &probe, HASH_FIND);
			if (la == NULL || la->last < lastAll ||
				actions[la->last].action != NE_ACTION_LISTEN_PATTERN)
				toRemovePat[ntoRemovePat++] = pat;
		}
	}
	else
	{
		List	   *curPat = ne_pattern_listening();

		toRemove = palloc(sizeof(char *) * (nactions + 1));
		ntoRemove = 0;
		toRemovePat = palloc(sizeof(char *) * (nactions + 1));
		ntoRemovePat = 0;
		for (int i = 0; i < nactions; i++)
		{
			NeLastAction *la;

			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
			if (actions[i].action != NE_ACTION_UNLISTEN &&
				actions[i].action != NE_ACTION_UNLISTEN_PATTERN)
				continue;
			la = ne_last_action(lastAction, &actions[i], HASH_FIND);
			if (la == NULL || la->last != i)
				continue;
			if (actions[i].action == NE_ACTION_UNLISTEN)
			{
				if (ne_local_lookup(actions[i].channel) != NULL)
					toRemove[ntoRemove++] = actions[i].channel;
			}
			else
			{
				ListCell   *lc;

				foreach(lc, curPat)
				{
					if (strcmp((char *) lfirst(lc), actions[i].channel) == 0)
					{
						toRemovePat[ntoRemovePat++] = actions[i].channel;
						break;
					}
				}
			}
		}
	}
	hash_destroy(lastAction);

	/* a session can never listen on more channels than the shared hash holds */
	nlocal = ne_local_channels ? hash_get_num_entries(ne_local_channels) : 0;
	if (nnew > 0 && nlocal + nnew - ntoRemove > ne_max_channels)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many channels being listened to"),
				 errdetail("The transaction would leave this session listening on %ld channels; notify_ext.max_channels is %d.",
						   nlocal + nnew - ntoRemove,
						   ne_max_channels),
				 errhint("Increase notify_ext.max_channels.")));
}

static void
ne_pre_commit(void)
{
	MemoryContext old;

	/*
	 * An idle session woken by the catch-up interrupt runs an empty
	 * transaction while it waits for the client's next message: this is
	 * where it sends what it was woken for.  pq_is_reading_msg() is true
	 * only there (the backend is inside its read of a client message), never
	 * at the commit of a transaction that ran client commands (such as the
	 * Sync of an extended-protocol one, which holds an XID and locks until
	 * its commit record: those sessions get their notifications right
	 * before ReadyForQuery, after the transaction ended).
	 */
	if (ne_slot_active && pq_is_reading_msg() &&
		whereToSendOutput == DestRemote && !IsTransactionBlock() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
		npending == 0 && nactions == 0)
		ne_deliver_if_pending(true);

	if (npending == 0 && nactions == 0)
		return;

	old = MemoryContextSwitchTo(TopTransactionContext);
	precommitDone = true;

	if (nactions > 0)
	{
		ne_plan_listen_changes();
		if (ntoAdd > 0)
			ne_registry_add(toAdd, ntoAdd);
		if (ntoAddPat > 0)
			ne_pattern_add(toAddPat, ntoAddPat);
	}

	if (npending > 0)
	{
		/* the notifications go to the WAL too: they need the XID (walrec.c) */
		if (ne_wal_log)
			(void) GetCurrentTransactionId();
		ne_queue_publish(pending, npending, &publishedPos, &wakeSlots, &nwake);
	}

	MemoryContextSwitchTo(old);
}

static void
ne_commit(void)
{
	if (npending > 0)
		pg_atomic_fetch_add_u64(&ne_shared->notificationsCommitted, npending);
	if (publishedPos != NE_INVALID_POS)
	{
		ne_queue_set_state(publishedPos, NE_BATCH_COMMITTED);
		ne_signal_listeners(wakeSlots, nwake);
	}
	if (ntoAdd > 0)
		ne_registry_commit_added(toAdd, ntoAdd);
	if (ntoAddPat > 0)
		ne_pattern_commit_added(toAddPat, ntoAddPat);
	if (ntoRemove > 0)
		ne_registry_remove(toRemove, ntoRemove);
	if (ntoRemovePat > 0)
		ne_registry_remove_patterns(toRemovePat, ntoRemovePat);
}

static void
ne_abort(void)
{
	if (publishedPos != NE_INVALID_POS)
	{
		ne_queue_set_state(publishedPos, NE_BATCH_ABORTED);
		ne_signal_listeners(wakeSlots, nwake);
	}
	if (ntoAdd > 0 || ntoAddPat > 0)
		ne_registry_remove_uncommitted();
}

static void
ne_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	if (ne_shared == NULL)
		return;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			ne_pre_commit();
			break;
		case XACT_EVENT_COMMIT:
			ne_commit();
			ne_reset_xact_state();
			break;
		case XACT_EVENT_ABORT:
			ne_abort();
			ne_reset_xact_state();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (npending > 0 || nactions > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY")));
			break;
		case XACT_EVENT_PREPARE:
			ne_reset_xact_state();
			break;
		default:
			/* parallel-worker events: workers cannot notify */
			break;
	}
}

static void
ne_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid pg_attribute_unused(),
					void *arg pg_attribute_unused())
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;

	if (npending > 0 && pending[npending - 1]->subid >= mySubid)
	{
		while (npending > 0 && pending[npending - 1]->subid >= mySubid)
		{
			npending--;
			if (pendingHash != NULL)
				(void) hash_search(pendingHash, &pending[npending], HASH_REMOVE, NULL);
		}
		/* entries sit in the arena in the order of pending[] */
		ne_arena_truncate((char *) pending[npending]);
	}
	while (nactions > 0 && actions[nactions - 1].subid >= mySubid)
		nactions--;
}

void
ne_xact_init(void)
{
	RegisterXactCallback(ne_xact_callback, NULL);
	RegisterSubXactCallback(ne_subxact_callback, NULL);
}
