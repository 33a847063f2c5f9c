/*-------------------------------------------------------------------------
 *
 * module.c
 *	  Module entry point: GUCs, shared-memory sizing and initialisation.
 *
 * _PG_init() runs in the postmaster (shared_preload_libraries).  It defines
 * the GUCs, asks for shared memory and LWLocks from shmem_request_hook, and
 * creates the structures described in notify_ext.h from shmem_startup_hook.
 * Loaded any other way it only records that it was not preloaded: every SQL
 * entry point then fails with a hint (ne_check_preloaded).
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

NotifyExtShared *ne_shared = NULL;
char	   *ne_ring = NULL;
HTAB	   *ne_channel_hash = NULL;

int			ne_queue_size_kb = 16384;
int			ne_max_channels = 4096;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#define NE_TRANCHE_NAME "notify_ext"

static int
ne_bitmap_words(void)
{
	return (MaxBackends + 63) / 64;
}

Size
ne_batch_header_size(void)
{
	return MAXALIGN(sizeof(NotifyExtBatchHeader)) +
		sizeof(uint64) * ne_shared->bitmapWords;
}

static Size
ne_channel_entry_size(void)
{
	return offsetof(NeChannelEntry, bits) +
		sizeof(uint64) * ne_bitmap_words();
}

static Size
ne_ring_bytes(void)
{
	return TYPEALIGN_DOWN(MAXIMUM_ALIGNOF, (Size) ne_queue_size_kb * 1024);
}

static Size
ne_state_size(void)
{
	return add_size(offsetof(NotifyExtShared, slots),
					mul_size(MaxBackends, sizeof(NotifyExtSlot)));
}

static void
ne_shmem_request(void)
{
	Size		size;

	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	size = MAXALIGN(ne_state_size());
	size = add_size(size, MAXALIGN(ne_ring_bytes()));
	size = add_size(size, hash_estimate_size(ne_max_channels,
											 ne_channel_entry_size()));
	size = add_size(size, MAXALIGN(ne_pattern_shmem_size()));
	RequestAddinShmemSpace(size);
	RequestNamedLWLockTranche(NE_TRANCHE_NAME, 2);
}

static void
ne_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	ne_shared = NULL;
	ne_ring = NULL;
	ne_channel_hash = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	ne_shared = ShmemInitStruct("notify_ext state", ne_state_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(NE_TRANCHE_NAME);

		ne_shared->registryLock = &locks[0].lock;
		ne_shared->queueLock = &locks[1].lock;
		ne_shared->head = 0;
		ne_shared->tail = 0;
		ne_shared->ringSize = ne_ring_bytes();
		ne_shared->nslots = MaxBackends;
		ne_shared->bitmapWords = ne_bitmap_words();
		ne_shared->lastFullWarn = 0;
		ne_shared->batchesPublished = 0;
		ne_shared->notificationsPublished = 0;
		pg_atomic_init_u64(&ne_shared->notificationsCommitted, 0);
		ne_shared->queueFullCount = 0;
		ne_shared->skipCount = 0;
		ne_shared->terminateCount = 0;
		ne_shared->skippedNotifications = 0;
		ne_shared->lastFullAction = -1;
		ne_shared->npatterns = 0;
		ne_shared->walSeen = false;
		ne_shared->spillPos = 0;
		ne_shared->diskSegLow = 0;
		ne_shared->diskSegEnd = 0;
		ne_shared->spilledBytes = 0;
		ne_shared->spillReadErrors = 0;
		for (int i = 0; i < MaxBackends; i++)
		{
			ne_shared->slots[i].pid = 0;
			ne_shared->slots[i].dboid = InvalidOid;
			pg_atomic_init_u64(&ne_shared->slots[i].wakeupPos, NE_INVALID_POS);
			pg_atomic_init_u64(&ne_shared->slots[i].wake, 0);
			pg_atomic_init_u32(&ne_shared->slots[i].sending, 0);
			pg_atomic_init_u64(&ne_shared->slots[i].delivered, 0);
			pg_atomic_init_u32(&ne_shared->slots[i].gapPending, 0);
			pg_atomic_init_u32(&ne_shared->slots[i].terminating, 0);
			ne_shared->slots[i].listenSince = 0;
			ne_shared->slots[i].resumePos = NE_INVALID_POS;
			ne_shared->slots[i].resumeEntry = 0;
			ne_shared->slots[i].skips = 0;
			ne_shared->slots[i].missed = 0;
			memset(&ne_shared->slots[i].gap, 0, sizeof(NeGap));
			pg_atomic_init_u64(&ne_shared->slots[i].pendingPos, NE_INVALID_POS);
			SpinLockInit(&ne_shared->slots[i].recMutex);
			ne_shared->slots[i].recPos = NE_INVALID_POS;
			ne_shared->slots[i].recState = 0;
		}
		/* a new queue: spill files of an earlier one are garbage */
		ne_spill_reset_dir();
	}

	ne_ring = ShmemInitStruct("notify_ext ring", ne_ring_bytes(), &found);
	{
		char	   *table = ShmemInitStruct("notify_ext patterns",
											ne_pattern_shmem_size(), &found);

		ne_pattern_shmem_init(table, found);
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(NeChannelKey);
	info.entrysize = ne_channel_entry_size();
	ne_channel_hash = ShmemInitHash("notify_ext channels",
									ne_max_channels, ne_max_channels,
									&info,
									HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	LWLockRelease(AddinShmemInitLock);
}

/*
 * Every SQL entry point calls this first.
 */
void
ne_check_preloaded(void)
{
	if (ne_shared == NULL || ne_ring == NULL || ne_channel_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("notify_ext must be loaded via shared_preload_libraries"),
				 errhint("Add notify_ext to shared_preload_libraries in postgresql.conf and restart the server.")));
}

PG_FUNCTION_INFO_V1(notify_ext_check_preloaded);

Datum
notify_ext_check_preloaded(PG_FUNCTION_ARGS)
{
	ne_check_preloaded();
	PG_RETURN_VOID();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("notify_ext.queue_size",
							"Size of the shared notification queue.",
							"Notifications wait here until every listener "
							"that is interested in them has read them.",
							&ne_queue_size_kb,
							16384,
							64,
							1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify_ext.queue_disk_limit",
							"Maximum size of the part of the notification queue kept on disk.",
							"When listeners have not read what the shared-memory queue "
							"(notify_ext.queue_size) holds, the oldest notifications move to "
							"files in pg_notify_ext/, up to this size; 0 keeps the queue in "
							"shared memory only.",
							&ne_queue_disk_limit_mb,
							8192,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify_ext.max_payload_size",
							"Payloads of notifications must be shorter than this.",
							"Core's limit is 8000 bytes; up to 256MB.",
							&ne_max_payload_size,
							NE_CORE_PAYLOAD_LIMIT,
							NE_CORE_PAYLOAD_LIMIT,
							NE_MAX_PAYLOAD_LIMIT,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify_ext.max_channels",
							"Maximum number of distinct (database, channel) "
							"pairs listened to at the same time.",
							NULL,
							&ne_max_channels,
							4096,
							16,
							1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify_ext.max_patterns",
							"Maximum number of distinct (database, pattern) "
							"pairs listened to with ext_listen_pattern() at the same time.",
							NULL,
							&ne_max_patterns,
							1024,
							1,
							100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	ne_intercept_init();		/* notify_ext.intercept and its hooks */
	ne_overflow_init();			/* notify_ext.queue_full_action, its log hook */
	ne_wal_init();				/* notify_ext.wal_log, the WAL resource manager */

	MarkGUCPrefixReserved("notify_ext");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ne_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ne_shmem_startup;

	ne_xact_init();
}
