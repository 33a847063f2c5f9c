/*-------------------------------------------------------------------------
 *
 * walrec.c
 *	  Notifications in the WAL, for listeners on hot standbys.
 *
 * On the primary, with notify_ext.wal_log on, every notifying transaction
 * writes its notifications at PRE_COMMIT as WAL records of our own
 * resource manager (NE_RMGR_ID), whether or not anyone on the primary
 * listens: streaming replication carries them to every standby.  Such a
 * transaction gets an XID (as in core, whose NOTIFY always takes one).
 * Where the primary has listeners the record is written under queueLock,
 * right after the batch took its place in the ring, so that WAL order and
 * the primary's delivery order agree.  A batch larger than
 * NE_WAL_CHUNK goes in several records, in order.
 *
 * On a standby, the startup process replays a record into the standby's
 * own queue (the same ring, disk tier and listener table as on a primary)
 * as a batch in state PENDING that carries the record's XID.  Its outcome
 * is the clog's: a reader finds PENDING while the transaction is in
 * progress (KnownAssignedXids), COMMITTED or ABORTED once the commit or
 * abort record has been replayed (ne_wal_resolve_state).  To wake the
 * listeners at that moment the startup process keeps, in its own memory,
 * the XIDs of the batches it replayed with the listener slots they name,
 * and our wrappers around the Transaction and Standby resource managers'
 * redo functions signal those slots when a commit or abort record of one
 * of them is replayed, or when a running-transactions record shows that it
 * ended without one (the primary crashed).  At the end of recovery
 * (promotion) everyone still waiting is woken: those transactions never
 * committed.
 *
 * Replay never waits for a listener: a full standby queue skips its
 * laggards and tells them (the gap signal), whatever
 * notify_ext.queue_full_action says.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/procarray.h"
#include "storage/standbydefs.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/*
 * Our resource manager's ID, from the custom range (128-255; 128 is for
 * experiments).  Documented in the README; a standby must preload
 * notify_ext too, or it cannot replay these records.
 */
#define NE_RMGR_ID			213
#define XLOG_NE_BATCH		0x00

/* entries per record, at most (a larger batch takes several records) */
#define NE_WAL_CHUNK		(8 * 1024 * 1024)

bool		ne_wal_log = false;

/* a batch record: this, then entries as in the ring */
typedef struct xl_ne_batch
{
	Oid			dboid;
	int32		srcPid;
	uint32		nentries;
} xl_ne_batch;

/* startup process: XIDs of replayed batches still waiting, and whom to wake */
typedef struct NeWaitingXid
{
	TransactionId xid;
	uint64		bits[FLEXIBLE_ARRAY_MEMBER];
} NeWaitingXid;

static HTAB *waitingXids = NULL;

static void (*prev_xact_redo) (XLogReaderState *record) = NULL;
static void (*prev_standby_redo) (XLogReaderState *record) = NULL;

static void ne_wal_redo(XLogReaderState *record);
static void ne_wal_desc(StringInfo buf, XLogReaderState *record);
static const char *ne_wal_identify(uint8 info);
static void ne_wal_cleanup(void);

static RmgrData ne_rmgr = {
	.rm_name = "notify_ext",
	.rm_redo = ne_wal_redo,
	.rm_desc = ne_wal_desc,
	.rm_identify = ne_wal_identify,
	.rm_startup = NULL,
	.rm_cleanup = ne_wal_cleanup,
};

/* ------------------------------------------------------------ primary */

static void
ne_wal_insert(Oid dboid, const char *entries, Size len, uint32 n)
{
	xl_ne_batch xl;

	xl.dboid = dboid;
	xl.srcPid = MyProcPid;
	xl.nentries = n;
	XLogBeginInsert();
	XLogRegisterData((char *) &xl, sizeof(xl));
	XLogRegisterData((char *) entries, len);
	(void) XLogInsert(NE_RMGR_ID, XLOG_NE_BATCH);
}

/*
 * Write this transaction's notifications to the WAL, in records of at most
 * NE_WAL_CHUNK bytes of entries.  The transaction has an XID already
 * (xact.c).  May ERROR (before commit).
 */
void
ne_wal_log_batch(NePendingNotify **notifies, int n)
{
	Size		cap = NE_WAL_CHUNK;
	char	   *buf = palloc(cap);
	Size		used = 0;
	uint32		count = 0;

	Assert(TransactionIdIsValid(GetTopTransactionIdIfAny()));
	for (int i = 0; i < n; i++)
	{
		NePendingNotify *pn = notifies[i];
		NotifyExtEntryHeader eh;
		Size		need = sizeof(eh) + pn->channelLen + pn->payloadLen;

		if (used > 0 && used + need > cap)
		{
			ne_wal_insert(MyDatabaseId, buf, used, count);
			used = 0;
			count = 0;
		}
		if (need > cap)
		{
			cap = need;
			buf = repalloc_huge(buf, cap);
		}
		memset(&eh, 0, sizeof(eh));
		eh.channelLen = pn->channelLen;
		eh.payloadLen = pn->payloadLen;
		memcpy(buf + used, &eh, sizeof(eh));
		memcpy(buf + used + sizeof(eh), NE_PN_CHANNEL(pn), eh.channelLen);
		memcpy(buf + used + sizeof(eh) + eh.channelLen, NE_PN_PAYLOAD(pn), eh.payloadLen);
		used += need;
		count++;
	}
	if (count > 0)
		ne_wal_insert(MyDatabaseId, buf, used, count);
	pfree(buf);
}

/* ------------------------------------------------------------ standby */

/*
 * The state of a replayed batch: PENDING while its transaction is in
 * progress, then what the clog says.  Runs in listeners' drains, which
 * must not throw: an error reading the clog leaves it PENDING (logged).
 */
uint32
ne_wal_resolve_state(TransactionId xid)
{
	volatile uint32 state = NE_BATCH_PENDING;
	volatile uint32 holdoff = InterruptHoldoffCount;
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		if (!TransactionIdIsInProgress(xid))
			state = TransactionIdDidCommit(xid) ? NE_BATCH_COMMITTED : NE_BATCH_ABORTED;
	}
	PG_CATCH();
	{
		InterruptHoldoffCount = holdoff;
		MemoryContextSwitchTo(old);
		FlushErrorState();
		ereport(LOG,
				(errmsg("notify_ext: could not look up the outcome of transaction %u", xid)));
	}
	PG_END_TRY();
	return state;
}

/* wake the slots named in bits (startup process) */
static void
ne_wake_bits(const uint64 *bits)
{
	int		   *slots = palloc(sizeof(int) * ne_shared->nslots);
	int			n = 0;

	for (int w = 0; w < ne_shared->bitmapWords; w++)
	{
		uint64		b = bits[w];

		while (b != 0)
		{
			int			i = w * 64 + pg_rightmost_one_pos64(b);

			b &= b - 1;
			if (i < ne_shared->nslots)
				slots[n++] = i;
		}
	}
	ne_signal_listeners(slots, n);
	pfree(slots);
}

static void
ne_wal_ended(TransactionId xid)
{
	NeWaitingXid *w;

	if (waitingXids == NULL || hash_get_num_entries(waitingXids) == 0)
		return;
	w = hash_search(waitingXids, &xid, HASH_FIND, NULL);
	if (w == NULL)
		return;
	ne_wake_bits(w->bits);
	(void) hash_search(waitingXids, &xid, HASH_REMOVE, NULL);
}

/* Transaction redo, then: did a replayed batch's transaction end? */
static void
ne_xact_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & XLOG_XACT_OPMASK;

	prev_xact_redo(record);
	if (info == XLOG_XACT_COMMIT || info == XLOG_XACT_ABORT)
		ne_wal_ended(XLogRecGetXid(record));
}

/*
 * Standby redo, then: a running-transactions record names the oldest XID
 * still running; a replayed batch's transaction older than it ended
 * without a commit record (the primary crashed): its listeners are woken
 * to find it aborted.
 */
static void
ne_standby_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;

	prev_standby_redo(record);
	if (info == XLOG_RUNNING_XACTS && waitingXids != NULL &&
		hash_get_num_entries(waitingXids) > 0)
	{
		xl_running_xacts *xlrec = (xl_running_xacts *) XLogRecGetData(record);
		HASH_SEQ_STATUS seq;
		NeWaitingXid *w;

		hash_seq_init(&seq, waitingXids);
		while ((w = hash_seq_search(&seq)) != NULL)
		{
			if (TransactionIdPrecedes(w->xid, xlrec->oldestRunningXid))
			{
				ne_wake_bits(w->bits);
				(void) hash_search(waitingXids, &w->xid, HASH_REMOVE, NULL);
			}
		}
	}
}

/*
 * Put a replayed batch into this server's queue.  Returns the listener
 * bitmap it was given (all zero if nobody here listens).  Never waits for
 * a listener: if the queue is full the laggards are skipped (and told).
 */
static void
ne_wal_enqueue(Oid dboid, int32 srcPid, TransactionId xid, uint32 n,
			   const char *entries, Size len, uint64 *bitmap)
{
	Size		hdrSize = ne_batch_header_size();
	uint64		total = MAXALIGN(hdrSize + len);
	NotifyExtBatchHeader hdr;
	NeRoomPlan	plan;
	NeAffected *affected = NULL;
	int			naffected = 0;
	bool		anyone = false;
	uint64		pos;
	Size		off = 0;
	char		prev[NAMEDATALEN] = {0};

	LWLockAcquire(ne_shared->registryLock, LW_SHARED);
	for (uint32 i = 0; i < n; i++)
	{
		NotifyExtEntryHeader eh;
		char		channel[NAMEDATALEN];

		memcpy(&eh, entries + off, sizeof(eh));
		memcpy(channel, entries + off + sizeof(eh), eh.channelLen);
		channel[eh.channelLen] = '\0';
		if (i == 0 || strcmp(prev, channel) != 0)
		{
			(void) ne_registry_bitmap(dboid, channel, bitmap);
			ne_pattern_bitmap(dboid, channel, bitmap);
			strlcpy(prev, channel, NAMEDATALEN);
		}
		off += sizeof(eh) + eh.channelLen + eh.payloadLen;
	}
	for (int w = 0; w < ne_shared->bitmapWords; w++)
		anyone |= (bitmap[w] != 0);
	if (!anyone || total > PG_UINT32_MAX)
	{
		LWLockRelease(ne_shared->registryLock);
		memset(bitmap, 0, sizeof(uint64) * ne_shared->bitmapWords);
		return;
	}

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	ne_queue_plan(total, &plan);
	if (!plan.fits)
	{
		ne_queue_advance_tail_locked();
		ne_queue_plan(total, &plan);
	}
	if (!plan.fits)
	{
		/* replay never waits: skip the laggards, whatever the action says */
		ne_shared->queueFullCount++;
		if (ne_queue_make_room(plan.tailTarget, true, &affected, &naffected))
		{
			ne_queue_advance_tail_locked();
			ne_queue_plan(total, &plan);
		}
	}
	if (!plan.fits)
	{
		LWLockRelease(ne_shared->queueLock);
		LWLockRelease(ne_shared->registryLock);
		ereport(WARNING,
				(errmsg("notify_ext: a replayed batch of %u notifications (%llu bytes) did not fit in the queue and was not delivered on this standby",
						n, (unsigned long long) total)));
		memset(bitmap, 0, sizeof(uint64) * ne_shared->bitmapWords);
		return;
	}
	if (plan.giant)
		ne_queue_spill(ne_shared->head);
	else if (plan.spillTo != 0)
		ne_queue_spill(plan.spillTo);

	pos = ne_shared->head;
	memset(&hdr, 0, sizeof(hdr));
	pg_atomic_init_u32(&hdr.state, NE_BATCH_PENDING);
	hdr.dboid = dboid;
	hdr.length = (uint32) total;
	hdr.srcPid = srcPid;
	hdr.nentries = n;
	hdr.srcSlot = NE_NO_SLOT;
	hdr.xid = xid;
	hdr.time = GetCurrentTimestamp();
	if (plan.giant)
	{
		char	   *buf = palloc0(total);

		memcpy(buf, &hdr, sizeof(hdr));
		memcpy(buf + MAXALIGN(sizeof(NotifyExtBatchHeader)), bitmap,
			   sizeof(uint64) * ne_shared->bitmapWords);
		memcpy(buf + hdrSize, entries, len);
		ne_spill_note_segments(pos, pos + total);
		ne_spill_write(pos, buf, total);
		pfree(buf);
		ne_shared->spillPos = pos + total;
		ne_shared->spilledBytes += total;
	}
	else
	{
		static const char zeros[MAXIMUM_ALIGNOF] = {0};

		ne_ring_write(pos, &hdr, sizeof(hdr));
		ne_ring_write(pos + MAXALIGN(sizeof(NotifyExtBatchHeader)), bitmap,
					  sizeof(uint64) * ne_shared->bitmapWords);
		ne_ring_write(pos + hdrSize, entries, len);
		ne_ring_write(pos + hdrSize + len, zeros, total - hdrSize - len);
	}
	ne_shared->head = pos + total;
	ne_shared->batchesPublished++;
	ne_shared->notificationsPublished += n;
	for (int w = 0; w < ne_shared->bitmapWords; w++)
	{
		uint64		bits = bitmap[w];

		while (bits != 0)
		{
			int			i = w * 64 + pg_rightmost_one_pos64(bits);
			NotifyExtSlot *slot = &ne_shared->slots[i];

			bits &= bits - 1;
			if (slot->pid == 0 || slot->dboid != dboid)
				continue;
			if (pg_atomic_read_u64(&slot->wakeupPos) == NE_INVALID_POS)
				pg_atomic_write_u64(&slot->wakeupPos, pos);
		}
	}
	LWLockRelease(ne_shared->queueLock);
	LWLockRelease(ne_shared->registryLock);

	if (naffected > 0)
		ne_overflow_after_publish(affected, naffected);
}

static void
ne_wal_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	xl_ne_batch *xl;
	TransactionId xid = XLogRecGetXid(record);
	uint64	   *bitmap;
	NeWaitingXid *w;
	bool		found;
	MemoryContext oldcxt;

	if (info != XLOG_NE_BATCH)
		elog(PANIC, "notify_ext: unknown WAL record type %u", info);
	if (ne_shared == NULL || !InHotStandby || !TransactionIdIsValid(xid))
		return;					/* no session can listen here yet */
	ne_shared->walSeen = true;

	xl = (xl_ne_batch *) XLogRecGetData(record);
	bitmap = palloc0(sizeof(uint64) * ne_shared->bitmapWords);
	oldcxt = CurrentMemoryContext;

	/*
	 * Redo must not fail because of us: a spill file that cannot be written
	 * (a full disk) or memory that cannot be had loses this batch on this
	 * standby, logged, and replay goes on.
	 */
	PG_TRY();
	{
		ne_wal_enqueue(xl->dboid, xl->srcPid, xid, xl->nentries,
					   XLogRecGetData(record) + sizeof(xl_ne_batch),
					   XLogRecGetDataLen(record) - sizeof(xl_ne_batch), bitmap);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (LWLockHeldByMe(ne_shared->queueLock))
			LWLockRelease(ne_shared->queueLock);
		if (LWLockHeldByMe(ne_shared->registryLock))
			LWLockRelease(ne_shared->registryLock);
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("notify_ext: a replayed batch of %u notifications was not queued on this standby: %s",
						xl->nentries, edata->message)));
		FreeErrorData(edata);
		memset(bitmap, 0, sizeof(uint64) * ne_shared->bitmapWords);
	}
	PG_END_TRY();

	/* remember whom to wake when the transaction ends */
	if (waitingXids == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(TransactionId);
		ctl.entrysize = offsetof(NeWaitingXid, bits) +
			sizeof(uint64) * ne_shared->bitmapWords;
		ctl.hcxt = TopMemoryContext;
		waitingXids = hash_create("notify_ext replayed transactions", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	/* (out of memory: its listeners are not woken at its commit, but find
	 * it the next time anything wakes them) */
	w = hash_search(waitingXids, &xid, HASH_ENTER_NULL, &found);
	if (w != NULL)
	{
		if (!found)
			memset(w->bits, 0, sizeof(uint64) * ne_shared->bitmapWords);
		for (int i = 0; i < ne_shared->bitmapWords; i++)
			w->bits[i] |= bitmap[i];
	}
	pfree(bitmap);
}

/* end of recovery: transactions still waiting never committed */
static void
ne_wal_cleanup(void)
{
	HASH_SEQ_STATUS seq;
	NeWaitingXid *w;

	if (waitingXids == NULL)
		return;
	hash_seq_init(&seq, waitingXids);
	while ((w = hash_seq_search(&seq)) != NULL)
		ne_wake_bits(w->bits);
	hash_destroy(waitingXids);
	waitingXids = NULL;
}

static void
ne_wal_desc(StringInfo buf, XLogReaderState *record)
{
	xl_ne_batch *xl = (xl_ne_batch *) XLogRecGetData(record);

	appendStringInfo(buf, "db %u, pid %d, %u notifications", xl->dboid,
					 xl->srcPid, xl->nentries);
}

static const char *
ne_wal_identify(uint8 info)
{
	return (info & ~XLR_INFO_MASK) == XLOG_NE_BATCH ? "BATCH" : NULL;
}

/*
 * LISTEN on a standby: say so if no notification has come through the WAL
 * since this standby started (the primary may not write them).
 */
void
ne_wal_listen_notice(void)
{
	if (RecoveryInProgress() && !ne_shared->walSeen)
		ereport(NOTICE,
				(errmsg("notify_ext: this standby has not replayed any notification from its primary since it started"),
				 errhint("Notifications reach standbys only if the primary has notify_ext.wal_log = on.")));
}

void
ne_wal_init(void)
{
	DefineCustomBoolVariable("notify_ext.wal_log",
							 "Write notifications to the WAL, for listeners on hot standbys.",
							 "Every notifying transaction then takes an XID and writes its notifications to the WAL, as core's NOTIFY takes an XID.",
							 &ne_wal_log,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	RegisterCustomRmgr(NE_RMGR_ID, &ne_rmgr);

	/* see the commit and abort records of the batches we replay */
	prev_xact_redo = RmgrTable[RM_XACT_ID].rm_redo;
	RmgrTable[RM_XACT_ID].rm_redo = ne_xact_redo;
	prev_standby_redo = RmgrTable[RM_STANDBY_ID].rm_redo;
	RmgrTable[RM_STANDBY_ID].rm_redo = ne_standby_redo;
}
