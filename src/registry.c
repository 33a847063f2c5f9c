/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Who listens to what: the shared channel hash and this backend's slot.
 *
 * Shared side: a fixed-size hash keyed by (database, channel) whose entries
 * hold a bitmap of the listener slots listening there.  Publishers OR these
 * bitmaps together (ne_registry_bitmap) to know whom a batch concerns.
 *
 * Local side: ne_local_channels, this backend's channels, each with the
 * queue position at which its LISTEN was registered, so that a new LISTEN
 * never delivers notifications published before it.
 *
 * A backend's slot (index MyBackendId - 1) is active while it has at least
 * one channel.  LISTEN is registered at PRE_COMMIT (it may fail: hash full)
 * and confirmed at COMMIT; UNLISTEN is applied at COMMIT (it cannot fail);
 * an abort after PRE_COMMIT removes what PRE_COMMIT added.  Session exit
 * removes everything (before_shmem_exit).
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/backendid.h"
#include "utils/memutils.h"

HTAB	   *ne_local_channels = NULL;
bool		ne_slot_active = false;

static bool exit_callback_registered = false;
static uint64 listen_seqno = 0;

int
ne_my_slot(void)
{
	if (MyBackendId == InvalidBackendId)
		return -1;
	return MyBackendId - 1;
}

static void
ne_make_key(NeChannelKey *key, Oid dboid, const char *channel)
{
	memset(key, 0, sizeof(*key));
	key->dboid = dboid;
	strlcpy(key->channel, channel, NAMEDATALEN);
}

static void
ne_local_init(void)
{
	HASHCTL		ctl;

	if (ne_local_channels != NULL)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(NeLocalChannel);
	ctl.hcxt = TopMemoryContext;
	ne_local_channels = hash_create("notify_ext local channels", 16, &ctl,
									HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

NeLocalChannel *
ne_local_lookup(const char *channel)
{
	if (ne_local_channels == NULL)
		return NULL;
	return (NeLocalChannel *) hash_search(ne_local_channels, channel,
										  HASH_FIND, NULL);
}

/* The shared entry of (dboid, channel), or NULL.  Caller holds registryLock. */
static NeChannelEntry *
ne_channel_lookup(Oid dboid, const char *channel)
{
	NeChannelKey key;

	ne_make_key(&key, dboid, channel);
	return (NeChannelEntry *) hash_search(ne_channel_hash, &key, HASH_FIND, NULL);
}

/*
 * OR the listeners of (dboid, channel) into bitmap; returns the channel's
 * entry (NULL if nobody listens), which stays put while the caller holds
 * registryLock (any mode).
 */
NeChannelEntry *
ne_registry_bitmap(Oid dboid, const char *channel, uint64 *bitmap)
{
	NeChannelEntry *entry = ne_channel_lookup(dboid, channel);

	if (entry != NULL)
	{
		for (int w = 0; w < ne_shared->bitmapWords; w++)
			bitmap[w] |= entry->bits[w];
	}
	return entry;
}

/* Does slot listen on (dboid, channel), directly or through a pattern? */
bool
ne_registry_slot_listens(Oid dboid, const char *channel, int slot)
{
	NeChannelEntry *entry = ne_channel_lookup(dboid, channel);

	if (entry != NULL &&
		(entry->bits[slot / 64] & (UINT64CONST(1) << (slot % 64))) != 0)
		return true;
	return ne_pattern_slot_matches(dboid, channel, slot);
}

/* Clear our bit on (MyDatabaseId, channel).  Caller holds registryLock excl. */
static void
ne_shared_remove_locked(const char *channel)
{
	NeChannelKey key;
	NeChannelEntry *entry;
	int			slot = ne_my_slot();
	uint64		mask = UINT64CONST(1) << (slot % 64);

	ne_make_key(&key, MyDatabaseId, channel);
	entry = (NeChannelEntry *) hash_search(ne_channel_hash, &key, HASH_FIND, NULL);
	if (entry == NULL || (entry->bits[slot / 64] & mask) == 0)
		return;
	entry->bits[slot / 64] &= ~mask;
	if (--entry->nlisteners == 0)
		hash_search(ne_channel_hash, &key, HASH_REMOVE, NULL);
}

/* Give the slot back when no channel is left.  Caller holds registryLock. */
static void
ne_slot_release_if_idle_locked(void)
{
	NotifyExtSlot *slot;

	if (!ne_slot_active || hash_get_num_entries(ne_local_channels) > 0 ||
		ne_pattern_local_count() > 0)
		return;
	slot = &ne_shared->slots[ne_my_slot()];
	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	slot->pid = 0;
	slot->dboid = InvalidOid;
	pg_atomic_write_u64(&slot->wakeupPos, NE_INVALID_POS);
	/* no owner, flag clear, generation kept (see THE WAKE-UP PROTOCOL) */
	pg_atomic_write_u64(&slot->wake,
						NE_WAKE_MAKE(0, NE_WAKE_GEN(pg_atomic_read_u64(&slot->wake))));
	LWLockRelease(ne_shared->queueLock);
	ne_slot_active = false;
	ne_deliver_reset_resume();
}

static void
ne_exit_callback(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	if (ne_shared == NULL)
		return;
	ne_registry_remove_all();
}

/*
 * Before a first LISTEN (of a channel or a pattern): everything that can
 * fail for lack of memory, while failing is still harmless.
 */
void
ne_registry_prepare_slot(void)
{
	if (ne_my_slot() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("notify_ext: this process cannot listen")));
	ne_local_init();
	ne_deliver_prepare();
	if (!exit_callback_registered)
	{
		before_shmem_exit(ne_exit_callback, (Datum) 0);
		exit_callback_registered = true;
	}
}

/* Take our slot if we do not have it yet.  Caller holds registryLock excl. */
void
ne_registry_activate_slot_locked(void)
{
	NotifyExtSlot *slot;

	if (ne_slot_active)
		return;
	slot = &ne_shared->slots[ne_my_slot()];
	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	slot->pid = MyProcPid;
	slot->dboid = MyDatabaseId;
	pg_atomic_write_u64(&slot->wakeupPos, NE_INVALID_POS);
	pg_atomic_write_u32(&slot->sending, 0);
	pg_atomic_write_u64(&slot->delivered, 0);
	pg_atomic_write_u32(&slot->gapPending, 0);
	pg_atomic_write_u32(&slot->terminating, 0);
	slot->listenSince = GetCurrentTimestamp();
	slot->resumePos = NE_INVALID_POS;
	slot->resumeEntry = 0;
	slot->skips = 0;
	slot->missed = 0;
	memset(&slot->gap, 0, sizeof(slot->gap));
	/* a new incarnation: our pid, next generation, flag clear */
	pg_atomic_write_u64(&slot->wake,
						NE_WAKE_MAKE(MyProcPid,
									 NE_WAKE_GEN(pg_atomic_read_u64(&slot->wake)) + 1));
	LWLockRelease(ne_shared->queueLock);
	ne_slot_active = true;
	ne_deliver_reset_resume();
}

/*
 * PRE_COMMIT: register channels (those not yet listened to).  May ERROR;
 * the abort callback then undoes the partial work (ne_registry_remove_uncommitted).
 */
void
ne_registry_add(char **channels, int n)
{
	int			slotno = ne_my_slot();
	uint64		head;
	int			nnew = 0;
	NeLocalChannel **added;

	ne_registry_prepare_slot();

	added = palloc(sizeof(NeLocalChannel *) * n);
	for (int i = 0; i < n; i++)
	{
		bool		found;
		NeLocalChannel *lc;

		lc = hash_search(ne_local_channels, channels[i], HASH_ENTER, &found);
		if (found)
			continue;
		lc->committed = false;
		lc->startPos = NE_INVALID_POS;
		lc->seqno = ++listen_seqno;
		added[nnew++] = lc;
	}
	if (nnew == 0)
	{
		pfree(added);
		return;
	}

	LWLockAcquire(ne_shared->registryLock, LW_EXCLUSIVE);
	ne_registry_activate_slot_locked();

	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	head = ne_shared->head;
	LWLockRelease(ne_shared->queueLock);

	for (int i = 0; i < nnew; i++)
	{
		NeChannelKey key;
		NeChannelEntry *entry;
		bool		found;

		ne_make_key(&key, MyDatabaseId, added[i]->channel);
		entry = (NeChannelEntry *) hash_search(ne_channel_hash, &key,
											   HASH_ENTER_NULL, &found);
		if (entry == NULL)
		{
			LWLockRelease(ne_shared->registryLock);
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many channels being listened to"),
					 errdetail("notify_ext.max_channels (%d) distinct database and channel pairs are listened to already.",
							   ne_max_channels),
					 errhint("Increase notify_ext.max_channels.")));
		}
		if (!found)
		{
			entry->nlisteners = 0;
			pg_atomic_init_u64(&entry->sent, 0);
			memset(entry->bits, 0, sizeof(uint64) * ne_shared->bitmapWords);
		}
		if ((entry->bits[slotno / 64] & (UINT64CONST(1) << (slotno % 64))) == 0)
		{
			entry->bits[slotno / 64] |= UINT64CONST(1) << (slotno % 64);
			entry->nlisteners++;
		}
		added[i]->startPos = head;
	}

	LWLockRelease(ne_shared->registryLock);
	pfree(added);
}

/* COMMIT: the channels registered at PRE_COMMIT are now in effect. */
void
ne_registry_commit_added(char **channels, int n)
{
	for (int i = 0; i < n; i++)
	{
		NeLocalChannel *lc = ne_local_lookup(channels[i]);

		if (lc != NULL)
			lc->committed = true;
	}
}

/*
 * ABORT (after PRE_COMMIT registered something): drop every channel that
 * never got committed.  Cannot fail.
 */
void
ne_registry_remove_uncommitted(void)
{
	HASH_SEQ_STATUS seq;
	NeLocalChannel *lc;

	if (ne_shared == NULL)
		return;

	LWLockAcquire(ne_shared->registryLock, LW_EXCLUSIVE);
	ne_pattern_remove_uncommitted_locked();
	if (ne_local_channels != NULL)
		hash_seq_init(&seq, ne_local_channels);
	while (ne_local_channels != NULL && (lc = hash_seq_search(&seq)) != NULL)
	{
		if (lc->committed)
			continue;
		if (ne_slot_active)
			ne_shared_remove_locked(lc->channel);
		hash_search(ne_local_channels, lc->channel, HASH_REMOVE, NULL);
	}
	/*
	 * Also when nothing was removed: a LISTEN that failed after taking the
	 * slot (pattern table full) must not leave a listener behind.
	 */
	ne_slot_release_if_idle_locked();
	LWLockRelease(ne_shared->registryLock);
}

/* COMMIT: UNLISTEN these channels.  Cannot fail. */
void
ne_registry_remove(char **channels, int n)
{
	if (ne_local_channels == NULL || !ne_slot_active)
		return;

	LWLockAcquire(ne_shared->registryLock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		if (hash_search(ne_local_channels, channels[i], HASH_FIND, NULL) == NULL)
			continue;
		ne_shared_remove_locked(channels[i]);
		hash_search(ne_local_channels, channels[i], HASH_REMOVE, NULL);
	}
	ne_slot_release_if_idle_locked();
	LWLockRelease(ne_shared->registryLock);
}

/* COMMIT: UNLISTEN these patterns.  Cannot fail. */
void
ne_registry_remove_patterns(char **patterns, int n)
{
	if (!ne_slot_active)
		return;
	LWLockAcquire(ne_shared->registryLock, LW_EXCLUSIVE);
	ne_pattern_remove_locked(patterns, n);
	ne_slot_release_if_idle_locked();
	LWLockRelease(ne_shared->registryLock);
}

/* COMMIT of UNLISTEN *, DISCARD ALL, session exit.  Cannot fail. */
void
ne_registry_remove_all(void)
{
	HASH_SEQ_STATUS seq;
	NeLocalChannel *lc;

	if (!ne_slot_active)
		return;

	LWLockAcquire(ne_shared->registryLock, LW_EXCLUSIVE);
	ne_pattern_remove_all_locked();
	if (ne_local_channels != NULL)
	{
		hash_seq_init(&seq, ne_local_channels);
		while ((lc = hash_seq_search(&seq)) != NULL)
		{
			ne_shared_remove_locked(lc->channel);
			hash_search(ne_local_channels, lc->channel, HASH_REMOVE, NULL);
		}
	}
	ne_slot_release_if_idle_locked();
	LWLockRelease(ne_shared->registryLock);
}

static int
ne_seqno_cmp(const ListCell *a, const ListCell *b)
{
	const NeLocalChannel *x = lfirst(a);
	const NeLocalChannel *y = lfirst(b);

	if (x->seqno < y->seqno)
		return -1;
	return x->seqno > y->seqno ? 1 : 0;
}

/* The committed channels, in LISTEN order, as a List of NeLocalChannel *. */
List *
ne_registry_listening_channels(void)
{
	HASH_SEQ_STATUS seq;
	NeLocalChannel *lc;
	List	   *result = NIL;

	if (ne_local_channels == NULL)
		return NIL;
	hash_seq_init(&seq, ne_local_channels);
	while ((lc = hash_seq_search(&seq)) != NULL)
	{
		if (lc->committed)
			result = lappend(result, lc);
	}
	list_sort(result, ne_seqno_cmp);
	return result;
}

/*
 * Snapshot of the shared listener table, for ext_listeners(): one element
 * per (listening backend, channel), as NeListenerInfo.
 */
List *
ne_registry_snapshot(void)
{
	HASH_SEQ_STATUS seq;
	NeChannelEntry *entry;
	List	   *result = NIL;

	LWLockAcquire(ne_shared->registryLock, LW_SHARED);
	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	hash_seq_init(&seq, ne_channel_hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		for (int i = 0; i < ne_shared->nslots; i++)
		{
			NeListenerInfo *info;

			if ((entry->bits[i / 64] & (UINT64CONST(1) << (i % 64))) == 0)
				continue;
			info = palloc(sizeof(NeListenerInfo));
			info->pid = ne_shared->slots[i].pid;
			info->dboid = entry->key.dboid;
			strlcpy(info->channel, entry->key.channel, NAMEDATALEN);
			result = lappend(result, info);
		}
	}
	LWLockRelease(ne_shared->queueLock);
	LWLockRelease(ne_shared->registryLock);
	return result;
}
