/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  Standby replay of the notifications the primary wrote to the WAL
 *	  (walrec.c), and how standby listeners learn their transactions' fate.
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
 * committed.  Before waking them the startup process writes the outcome
 * into the batches' headers, in the ring or in their spill files, so that
 * a listener that reads them much later does not need the clog (which by
 * then may have been truncated).
 *
 * Replay never waits for a listener and never fails because of us: a full
 * standby queue skips its laggards and tells them (the gap signal),
 * whatever notify_ext.queue_full_action says; a batch that cannot be
 * queued even so (larger than the queue can hold, a full disk, no memory)
 * is dropped on this standby, logged, and if its transaction commits the
 * listeners it would have reached get the gap signal (reason "not queued
 * on standby") with what each of them lost (replay_gap.c).
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/procarray.h"
#include "storage/standbydefs.h"
#include "utils/memutils.h"


/* a transaction's batches whose state we settle when it ends, at most */
#define NE_SETTLE_MAX		8

/* startup process: XIDs of replayed batches still waiting, and whom to wake */
typedef struct NeWaitingXid
{
	TransactionId xid;
	NeLost	   *lost;			/* its batches we could not queue */
	int			npos;			/* its batches in the queue (beyond
								 * NE_SETTLE_MAX the clog answers) */
	uint64		pos[NE_SETTLE_MAX];
	uint64		bits[FLEXIBLE_ARRAY_MEMBER];
} NeWaitingXid;

static HTAB *waitingXids = NULL;

static void (*prev_xact_redo) (XLogReaderState *record) = NULL;
static void (*prev_standby_redo) (XLogReaderState *record) = NULL;


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

/* wake the slots named in bits (startup process; allocates nothing) */
static void
ne_wake_bits(const uint64 *bits)
{
	for (int w = 0; w < ne_shared->bitmapWords; w++)
	{
		uint64		b = bits[w];

		while (b != 0)
		{
			int			i = w * 64 + pg_rightmost_one_pos64(b);

			b &= b - 1;
			if (i < ne_shared->nslots)
				ne_signal_listeners(&i, 1);
		}
	}
}

/*
 * After an error caught in redo: release the locks we held.  errfinish()
 * zeroed InterruptHoldoffCount and each LWLockRelease() resumes interrupts
 * once, so put back the count from before the PG_TRY and hold interrupts
 * once per lock first, as LWLockReleaseAll() does.
 */
static void
ne_replay_release_after_error(int holdoff)
{
	InterruptHoldoffCount = holdoff;
	if (LWLockHeldByMe(ne_shared->queueLock))
	{
		HOLD_INTERRUPTS();
		LWLockRelease(ne_shared->queueLock);
	}
	if (LWLockHeldByMe(ne_shared->registryLock))
	{
		HOLD_INTERRUPTS();
		LWLockRelease(ne_shared->registryLock);
	}
}

/*
 * The transaction of w's batches ended: write their final state into
 * their headers (queue.c), so that readers no longer need the clog.  A
 * spill file that cannot be written is logged; the clog answers then.
 */
static void
ne_replay_settle(NeWaitingXid *w, uint32 state)
{
	int			holdoff = InterruptHoldoffCount;
	MemoryContext old = CurrentMemoryContext;

	if (w->npos == 0)
		return;
	PG_TRY();
	{
		LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
		for (int i = 0; i < w->npos; i++)
			ne_queue_settle_replayed(w->pos[i], state);
		LWLockRelease(ne_shared->queueLock);
	}
	PG_CATCH();
	{
		ne_replay_release_after_error(holdoff);
		MemoryContextSwitchTo(old);
		FlushErrorState();
		ereport(LOG,
				(errmsg("notify_ext: could not write the outcome of transaction %u into a spilled batch; its readers will look it up", w->xid)));
	}
	PG_END_TRY();
}

/* ne_lost_build that does not throw (redo must go on) */
static NeLost *
ne_lost_build_safe(Oid dboid, const char *entries, Size len, uint32 n)
{
	NeLost	   *volatile lost = NULL;
	MemoryContext old = CurrentMemoryContext;
	int			holdoff = InterruptHoldoffCount;

	PG_TRY();
	{
		lost = ne_lost_build(dboid, entries, len, n);
	}
	PG_CATCH();
	{
		ne_replay_release_after_error(holdoff);
		MemoryContextSwitchTo(old);
		FlushErrorState();
		ereport(LOG,
				(errmsg("notify_ext: the listeners of a replayed batch that was not queued will not be told")));
	}
	PG_END_TRY();
	return lost;
}

static void
ne_replay_ended(TransactionId xid, bool committed)
{
	NeWaitingXid *w;

	if (waitingXids == NULL || hash_get_num_entries(waitingXids) == 0)
		return;
	w = hash_search(waitingXids, &xid, HASH_FIND, NULL);
	if (w == NULL)
		return;
	ne_replay_settle(w, committed ? NE_BATCH_COMMITTED : NE_BATCH_ABORTED);
	if (w->lost != NULL && committed)
		ne_lost_report(w->lost);
	ne_lost_free(w->lost);
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
		ne_replay_ended(XLogRecGetXid(record), info == XLOG_XACT_COMMIT);
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
				/* (no commit record: it did not commit; the clog agrees) */
				ne_replay_settle(w, NE_BATCH_ABORTED);
				ne_lost_free(w->lost);
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
 * False if it could not be queued even so (too large for the queue).
 */
static bool
ne_replay_enqueue(Oid dboid, int32 srcPid, TransactionId xid, uint32 n,
				  const char *entries, Size len, uint64 *bitmap, uint64 *posOut)
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
		return total <= PG_UINT32_MAX;
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
				(errmsg("notify_ext: a replayed batch of %u notifications (%llu bytes) did not fit in the queue and was not queued on this standby",
						n, (unsigned long long) total),
				 errdetail("If its transaction commits, the listeners it would have reached are told (the gap signal).")));
		memset(bitmap, 0, sizeof(uint64) * ne_shared->bitmapWords);
		return false;
	}
	if (plan.giant)
		ne_queue_spill(ne_shared->head);
	else if (plan.spillTo != 0)
		ne_queue_spill(plan.spillTo);

	pos = ne_shared->head;
	*posOut = pos;
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
	return true;
}

void
ne_replay_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	xl_ne_batch *xl;
	TransactionId xid = XLogRecGetXid(record);
	uint64	   *bitmap;
	NeWaitingXid *w;
	bool		found;
	MemoryContext oldcxt;
	volatile bool queued = false;
	volatile uint64 pos = NE_INVALID_POS;
	int			holdoff = InterruptHoldoffCount;
	NeLost	   *volatile lost = NULL;
	const char *entries;
	Size		len;

	if (info != XLOG_NE_BATCH)
		elog(PANIC, "notify_ext: unknown WAL record type %u", info);
	if (ne_shared == NULL || !InHotStandby || !TransactionIdIsValid(xid))
		return;					/* no session can listen here yet */
	ne_shared->walSeen = true;

	xl = (xl_ne_batch *) XLogRecGetData(record);
	entries = XLogRecGetData(record) + sizeof(xl_ne_batch);
	len = XLogRecGetDataLen(record) - sizeof(xl_ne_batch);
	bitmap = palloc0(sizeof(uint64) * ne_shared->bitmapWords);
	oldcxt = CurrentMemoryContext;

	/*
	 * Redo must not fail because of us: a spill file that cannot be written
	 * (a full disk) or memory that cannot be had loses this batch on this
	 * standby, logged, and replay goes on; its listeners are told if its
	 * transaction commits.
	 */
	PG_TRY();
	{
		uint64		p = NE_INVALID_POS;

		queued = ne_replay_enqueue(xl->dboid, xl->srcPid, xid, xl->nentries,
								   entries, len, bitmap, &p);
		pos = p;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		ne_replay_release_after_error(holdoff);
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("notify_ext: a replayed batch of %u notifications was not queued on this standby: %s",
						xl->nentries, edata->message)));
		FreeErrorData(edata);
		memset(bitmap, 0, sizeof(uint64) * ne_shared->bitmapWords);
		queued = false;
		pos = NE_INVALID_POS;
	}
	PG_END_TRY();
	if (!queued)
		lost = ne_lost_build_safe(xl->dboid, entries, len, xl->nentries);

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
		{
			w->lost = NULL;
			w->npos = 0;
			memset(w->bits, 0, sizeof(uint64) * ne_shared->bitmapWords);
		}
		if (pos != NE_INVALID_POS && w->npos < NE_SETTLE_MAX)
			w->pos[w->npos++] = pos;
		for (int i = 0; i < ne_shared->bitmapWords; i++)
			w->bits[i] |= bitmap[i];
		if (lost != NULL)
			w->lost = ne_lost_chain(w->lost, lost);
	}
	else if (lost != NULL)
	{
		ereport(LOG,
				(errmsg("notify_ext: out of memory: the listeners of a replayed batch that was not queued will not be told")));
		ne_lost_free(lost);
	}
	pfree(bitmap);
}

/* end of recovery: transactions still waiting never committed */
void
ne_replay_cleanup(void)
{
	HASH_SEQ_STATUS seq;
	NeWaitingXid *w;

	if (waitingXids == NULL)
		return;
	hash_seq_init(&seq, waitingXids);
	while ((w = hash_seq_search(&seq)) != NULL)
	{
		ne_replay_settle(w, NE_BATCH_ABORTED);
		ne_lost_free(w->lost);
		ne_wake_bits(w->bits);
	}
	hash_destroy(waitingXids);
	waitingXids = NULL;
}

/* watch the commit and abort records of the batches we replay */
void
ne_replay_init(void)
{
	prev_xact_redo = RmgrTable[RM_XACT_ID].rm_redo;
	RmgrTable[RM_XACT_ID].rm_redo = ne_xact_redo;
	prev_standby_redo = RmgrTable[RM_STANDBY_ID].rm_redo;
	RmgrTable[RM_STANDBY_ID].rm_redo = ne_standby_redo;
}
