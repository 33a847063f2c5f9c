/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The shared notification queue: a ring of batches, one per committing
 *	  transaction that had someone to notify.
 *
 * A batch is appended at PRE_COMMIT by ne_queue_publish() (the single place
 * that decides the order in which listeners see transactions), written in
 * state PENDING, and flipped to COMMITTED or ABORTED by its own backend
 * when the transaction ends (ne_queue_set_state, which cannot fail).
 *
 * Space is reclaimed lazily (ne_queue_advance_tail_locked, when a publisher
 * needs room or the fill level is asked for): the tail moves to
 * the oldest wakeupPos of any listener slot, but never past a PENDING batch
 * (its publisher still has to write its state word there).  Both are read
 * off the slots, so reclaiming costs O(MaxBackends), whatever the number
 * of batches in the ring.
 *
 * The ring is the fast tier of a longer queue (spill.c): when listeners
 * still need more than the ring holds, the publisher that needs room first
 * copies the oldest needed batches to spill files (ne_queue_spill), and a
 * batch larger than the ring goes straight to disk.  Only when the ring and
 * notify_ext.queue_disk_limit are both used up is the queue full.  Readers
 * read through ne_queue_read / ne_queue_batch_state, which know where each
 * position lives.
 *
 * See notify_ext.h for the layout and the locking rules.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/transam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/timestamp.h"

#define NE_QUEUE_FULL_WARN_INTERVAL 5000	/* ms between warnings */

/*
 * Copy len bytes out of the ring starting at logical position pos.
 */
void
ne_ring_read(uint64 pos, void *dst, Size len)
{
	uint64		size = ne_shared->ringSize;
	Size		off = (Size) (pos % size);
	Size		first = Min(len, (Size) (size - off));

	memcpy(dst, ne_ring + off, first);
	if (first < len)
		memcpy((char *) dst + first, ne_ring, len - first);
}

/*
 * Copy len bytes into the ring starting at logical position pos.
 */
void
ne_ring_write(uint64 pos, const void *src, Size len)
{
	uint64		size = ne_shared->ringSize;
	Size		off = (Size) (pos % size);
	Size		first = Min(len, (Size) (size - off));

	memcpy(ne_ring + off, src, first);
	if (first < len)
		memcpy(ne_ring, (const char *) src + first, len - first);
}

static inline pg_atomic_uint32 *
ne_batch_state(uint64 pos)
{
	Assert(pos % MAXIMUM_ALIGNOF == 0);
	return (pg_atomic_uint32 *) (ne_ring + (pos % ne_shared->ringSize));
}

/*
 * Copy len bytes of the queue at pos, from the ring or (below spillPos)
 * from the spill files.  A batch lies wholly in one or the other.  Caller
 * holds queueLock.  Never throws: false if a spill file could not be read
 * (ne_spill_last_error() says why).
 */
bool
ne_queue_read(uint64 pos, void *dst, Size len)
{
	uint64		spillPos = ne_shared->spillPos;

	if (pos >= spillPos)
	{
		ne_ring_read(pos, dst, len);
		return true;
	}
	return ne_spill_read(pos, dst, len, spillPos);
}

/*
 * The state of the batch at pos whose header the caller read into *hdr
 * (with ne_queue_read, under queueLock).  A batch that went to disk while
 * PENDING, or is being written there, has its state in its publisher's
 * slot until that record is settled (spill.c).
 */
uint32
ne_queue_batch_state(uint64 pos, NotifyExtBatchHeader *hdr)
{
	uint32		state;

	if (pos >= ne_shared->spillPos)
		state = pg_atomic_read_u32(ne_batch_state(pos));
	else
		state = pg_atomic_read_u32(&hdr->state);
	if (state == NE_BATCH_PENDING && TransactionIdIsValid(hdr->xid))
	{
		/* replayed from the WAL (walrec.c): the clog knows the outcome */
		state = ne_wal_resolve_state(hdr->xid);
		if (state != NE_BATCH_PENDING && pos >= ne_shared->spillPos &&
			LWLockHeldByMeInMode(ne_shared->queueLock, LW_EXCLUSIVE))
			pg_atomic_write_u32(ne_batch_state(pos), state);
	}
	else if (state == NE_BATCH_PENDING && hdr->srcSlot < (uint32) ne_shared->nslots)
	{
		NotifyExtSlot *owner = &ne_shared->slots[hdr->srcSlot];

		SpinLockAcquire(&owner->recMutex);
		if (owner->recPos == pos)
			state = owner->recState;
		SpinLockRelease(&owner->recMutex);
	}
	pg_read_barrier();
	return state;
}

/*
 * The startup process settles a replayed batch (replay.c) when it replays
 * its transaction's end: the final state goes into the batch's header, in
 * the ring or in its spill file, so that readers need not ask the clog
 * again (the clog of a transaction that old may be truncated by then).
 * Caller holds queueLock exclusively.  ERROR if the spill file cannot be
 * written; the clog still answers then.
 */
void
ne_queue_settle_replayed(uint64 pos, uint32 state)
{
	pg_atomic_uint32 word;

	if (pos < ne_shared->tail || pos >= ne_shared->head)
		return;					/* read by all, gone */
	if (pos >= ne_shared->spillPos)
	{
		pg_atomic_write_u32(ne_batch_state(pos), state);
		return;
	}
	pg_atomic_init_u32(&word, state);
	ne_spill_write(pos + offsetof(NotifyExtBatchHeader, state), &word, sizeof(word));
}

/*
 * Move the tail up to the oldest position anybody still needs: the oldest
 * unconsumed batch of any listener, or the oldest batch still PENDING
 * (its publisher has yet to write its state word).  Reads only the slots,
 * never the ring.  Caller holds queueLock exclusively.
 */
void
ne_queue_advance_tail_locked(void)
{
	uint64		min = ne_shared->head;

	for (int i = 0; i < ne_shared->nslots; i++)
	{
		NotifyExtSlot *slot = &ne_shared->slots[i];
		uint64		p = pg_atomic_read_u64(&slot->pendingPos);

		if (p < min)
			min = p;
		if (slot->pid == 0)
			continue;
		p = pg_atomic_read_u64(&slot->wakeupPos);
		if (p < min)
			min = p;
	}
	Assert(min >= ne_shared->tail);
	ne_shared->tail = min;

	/* spill files the tail has passed */
	if (ne_shared->diskSegLow < ne_shared->diskSegEnd &&
		min / NE_SEG_SIZE > ne_shared->diskSegLow)
		ne_spill_unlink_below(min);
}

/*
 * The fraction of the queue's capacity in use: ring plus disk limit, as
 * core's is of its 8GB.
 */
double
ne_queue_usage(void)
{
	double		usage;

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	ne_queue_advance_tail_locked();
	usage = (double) (ne_shared->head - ne_shared->tail) /
		(double) (ne_shared->ringSize + ne_disk_limit_bytes());
	LWLockRelease(ne_shared->queueLock);
	return usage;
}

static Size
ne_entry_size(NePendingNotify *n)
{
	return sizeof(NotifyExtEntryHeader) + n->channelLen + n->payloadLen;
}

#define NE_GIANT_BUF (256 * 1024)

/*
 * Publish the current transaction's notifications (already deduplicated, in
 * the order they were sent) as one PENDING batch.
 *
 * *posOut gets the batch's position, or NE_INVALID_POS if no backend
 * listens on any of the channels (then nothing is written).  The listener
 * slots to wake after commit are returned in *wakeSlotsOut (allocated in
 * the current memory context), the calling backend's own slot excluded.
 *
 * Errors (queue full, a spill file that cannot be written) are thrown
 * before anything is queued, with one exception: the entries of a batch
 * larger than the ring are written to disk after the locks are released;
 * by then *posOut is set, and an error there leaves the batch to the abort
 * callback, which marks it ABORTED.
 */
void
ne_queue_publish(NePendingNotify **notifies, int n, uint64 *posOut,
				 int **wakeSlotsOut, int *nwake)
{
	int		   *wakeSlots;
	Size		hdrSize = ne_batch_header_size();
	Size		total = hdrSize;
	uint64	   *bitmap;
	bool		anyone = false;
	const char *prevChannel = NULL;
	uint64		pos;
	NotifyExtBatchHeader hdr;
	int			mySlot = ne_my_slot();
	bool		warn = false;
	int			warnPid = 0;
	bool		warnSending = false;
	NeAffected *affected = NULL;
	int			naffected = 0;
	NeChannelEntry **runEntry;
	int		   *runCount;
	int			nruns = 0;
	double		warnFill = 0;
	NeRoomPlan	plan;
	uint64		capacity;
	uint64		maxBatch;
	bool		walLog = ne_wal_log && TransactionIdIsValid(GetTopTransactionIdIfAny());

	*posOut = NE_INVALID_POS;
	*nwake = 0;

	if (mySlot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("notify_ext: this process cannot send notifications")));

	for (int i = 0; i < n; i++)
		total += ne_entry_size(notifies[i]);
	total = MAXALIGN(total);
	if (total > PG_UINT32_MAX - MAXIMUM_ALIGNOF)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many notifications in the NOTIFY queue"),
				 errdetail("The transaction's %d notifications need %zu bytes; one transaction can queue at most 4GB.",
						   n, total)));

	bitmap = palloc0(sizeof(uint64) * ne_shared->bitmapWords);
	/* one lookup per run of notifications on the same channel */
	for (int i = 0; i < n; i++)
	{
		if (i == 0 || strcmp(NE_PN_CHANNEL(notifies[i - 1]), NE_PN_CHANNEL(notifies[i])) != 0)
			nruns++;
	}
	runEntry = palloc(sizeof(NeChannelEntry *) * nruns);
	runCount = palloc0(sizeof(int) * nruns);
	nruns = 0;

	LWLockAcquire(ne_shared->registryLock, LW_SHARED);

	for (int i = 0; i < n; i++)
	{
		const char *channel = NE_PN_CHANNEL(notifies[i]);

		if (prevChannel == NULL || strcmp(prevChannel, channel) != 0)
		{
			prevChannel = channel;
			/* the entry stays put while we hold registryLock */
			runEntry[nruns++] = ne_registry_bitmap(MyDatabaseId, channel, bitmap);
			ne_pattern_bitmap(MyDatabaseId, channel, bitmap);
		}
		runCount[nruns - 1]++;
	}
	for (int w = 0; w < ne_shared->bitmapWords; w++)
		anyone |= (bitmap[w] != 0);

	if (!anyone)
	{
		LWLockRelease(ne_shared->registryLock);
		pfree(bitmap);
		pfree(runEntry);
		pfree(runCount);
		/* nobody here: only standbys may want them (walrec.c) */
		if (walLog)
			ne_wal_log_batch(notifies, n);
		return;
	}
	wakeSlots = palloc(sizeof(int) * ne_shared->nslots);

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);

	capacity = ne_shared->ringSize + ne_disk_limit_bytes();
	/* one batch lies in the ring or on disk, never in both */
	maxBatch = Max(ne_shared->ringSize, ne_disk_limit_bytes());
	ne_queue_plan(total, &plan);
	if (!plan.fits)
	{
		ne_queue_advance_tail_locked();
		ne_queue_plan(total, &plan);
	}
	if (!plan.fits && total <= maxBatch)
	{
		/* full: notify_ext.queue_full_action may move the laggards (overflow.c) */
		ne_shared->queueFullCount++;
		if (ne_queue_make_room(plan.tailTarget, false, &affected, &naffected))
		{
			ne_queue_advance_tail_locked();
			ne_queue_plan(total, &plan);
		}
	}
	if (!plan.fits)
	{
		bool		sending;
		uint64		oldest;
		int			pid = ne_queue_oldest_listener(&oldest, &sending);
		const char *grow = ne_disk_limit_bytes() > 0 ?
		"notify_ext.queue_disk_limit" : "notify_ext.queue_size or notify_ext.queue_disk_limit";

		LWLockRelease(ne_shared->queueLock);
		LWLockRelease(ne_shared->registryLock);
		if (total > maxBatch)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errdetail("The transaction's %d notifications need %zu bytes; they must fit in notify_ext.queue_size (%llu bytes) or in notify_ext.queue_disk_limit (%llu bytes).",
							   n, total, (unsigned long long) ne_shared->ringSize,
							   (unsigned long long) ne_disk_limit_bytes()),
					 errhint("Increase %s, or send fewer notifications per transaction.", grow)));
		else if (pid != 0 && sending)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errdetail("The server process with PID %d is among those with the oldest unread notifications; it is blocked sending notifications to a client that does not read them.", pid),
					 errhint("Only terminating that session frees the queue: pg_terminate_backend(%d); pg_cancel_backend() cannot interrupt it.  Or increase %s.", pid, grow)));
		else if (pid != 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errdetail("The server process with PID %d is among those with the oldest unread notifications; it is in a transaction or running a statement, and receives nothing until its transaction ends.", pid),
					 errhint("End that session's transaction (or pg_cancel_backend(%d) its statement), or increase %s.", pid, grow)));
		else
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errhint("Increase %s.", grow)));
	}

	/* room: what must go to disk first (may ERROR: nothing changed yet) */
	if (plan.giant)
	{
		ne_queue_spill(ne_shared->head);
		/* our own previous record (an ended batch) is written out first */
		if (!ne_record_settle(mySlot))
			elog(ERROR, "notify_ext: this backend has two batches in flight");
	}
	else if (plan.spillTo != 0)
		ne_queue_spill(plan.spillTo);

	pos = ne_shared->head;

	/* header, with the state word initialised before anything else */
	memset(&hdr, 0, sizeof(hdr));
	pg_atomic_init_u32(&hdr.state, NE_BATCH_PENDING);
	hdr.dboid = MyDatabaseId;
	hdr.length = (uint32) total;
	hdr.srcPid = MyProcPid;
	hdr.nentries = (uint32) n;
	hdr.srcSlot = (uint32) mySlot;
	hdr.time = GetCurrentTimestamp();

	if (plan.giant)
	{
		char	   *buf = palloc(hdrSize);

		memcpy(buf, &hdr, sizeof(hdr));
		memcpy(buf + MAXALIGN(sizeof(NotifyExtBatchHeader)), bitmap,
			   sizeof(uint64) * ne_shared->bitmapWords);
		ne_spill_note_segments(pos, pos + total);
		ne_spill_write(pos, buf, hdrSize);
		pfree(buf);
		/* from here on its state lives in our record until settled */
		SpinLockAcquire(&ne_shared->slots[mySlot].recMutex);
		ne_shared->slots[mySlot].recPos = pos;
		ne_shared->slots[mySlot].recState = NE_BATCH_PENDING;
		SpinLockRelease(&ne_shared->slots[mySlot].recMutex);
		ne_shared->spillPos = pos + total;
		ne_shared->spilledBytes += total;
	}
	else
	{
		uint64		p = pos + hdrSize;

		ne_ring_write(pos, &hdr, sizeof(hdr));
		pg_atomic_init_u32(ne_batch_state(pos), NE_BATCH_PENDING);
		ne_ring_write(pos + MAXALIGN(sizeof(NotifyExtBatchHeader)), bitmap,
					  sizeof(uint64) * ne_shared->bitmapWords);
		for (int i = 0; i < n; i++)
		{
			NotifyExtEntryHeader eh;

			memset(&eh, 0, sizeof(eh));
			eh.channelLen = notifies[i]->channelLen;
			eh.payloadLen = notifies[i]->payloadLen;
			ne_ring_write(p, &eh, sizeof(eh));
			p += sizeof(eh);
			ne_ring_write(p, NE_PN_CHANNEL(notifies[i]), eh.channelLen);
			p += eh.channelLen;
			ne_ring_write(p, NE_PN_PAYLOAD(notifies[i]), eh.payloadLen);
			p += eh.payloadLen;
		}
	}

	/* the batch is in the queue: from here on nothing fails under the locks */
	pg_atomic_write_u64(&ne_shared->slots[mySlot].pendingPos, pos);
	*posOut = pos;
	ne_shared->head = pos + total;
	ne_shared->batchesPublished++;
	ne_shared->notificationsPublished += n;

	/* per-channel counters, for monitoring (registryLock still held) */
	for (int r = 0; r < nruns; r++)
	{
		if (runEntry[r] != NULL)
			pg_atomic_fetch_add_u64(&runEntry[r]->sent, runCount[r]);
	}

	/* point the interested listeners at this batch, collect whom to wake */
	for (int w = 0; w < ne_shared->bitmapWords; w++)
	{
		uint64		bits = bitmap[w];

		while (bits != 0)
		{
			int			i = w * 64 + pg_rightmost_one_pos64(bits);
			NotifyExtSlot *slot = &ne_shared->slots[i];

			bits &= bits - 1;
			if (slot->pid == 0 || slot->dboid != MyDatabaseId)
				continue;
			if (pg_atomic_read_u64(&slot->wakeupPos) == NE_INVALID_POS)
				pg_atomic_write_u64(&slot->wakeupPos, pos);
			if (i != mySlot)
				wakeSlots[(*nwake)++] = i;
		}
	}
	*wakeSlotsOut = wakeSlots;

	/*
	 * Like core, warn (at most every 5 s) once the queue is half full.  The
	 * tail moves lazily: bring it up to date before judging.
	 */
	if ((ne_shared->head - ne_shared->tail) * 2 >= capacity)
		ne_queue_advance_tail_locked();
	if ((ne_shared->head - ne_shared->tail) * 2 >= capacity)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (TimestampDifferenceExceeds(ne_shared->lastFullWarn, now,
									   NE_QUEUE_FULL_WARN_INTERVAL))
		{
			uint64		oldest;

			warn = true;
			warnPid = ne_queue_oldest_listener(&oldest, &warnSending);
			warnFill = (double) (ne_shared->head - ne_shared->tail) /
				(double) capacity;
			ne_shared->lastFullWarn = now;
		}
	}

	/* to the WAL in the order of the ring (a giant batch: below) */
	if (walLog && !plan.giant)
		ne_wal_log_batch(notifies, n);

	LWLockRelease(ne_shared->queueLock);
	LWLockRelease(ne_shared->registryLock);
	pfree(bitmap);
	pfree(runEntry);
	pfree(runCount);

	/*
	 * A batch larger than the ring: its entries go to disk now, outside the
	 * locks.  Readers stop at it (PENDING), spillers and the tail never
	 * pass it, and it lies below spillPos, so nobody else writes there.
	 */
	if (plan.giant)
	{
		char	   *buf = palloc(NE_GIANT_BUF);
		Size		used = 0;
		uint64		p = pos + hdrSize;

		for (int i = 0; i < n; i++)
		{
			NePendingNotify *pn = notifies[i];
			NotifyExtEntryHeader eh;
			Size		need = ne_entry_size(pn);

			if (used + need > NE_GIANT_BUF)
			{
				CHECK_FOR_INTERRUPTS();
				ne_spill_write(p, buf, used);
				p += used;
				used = 0;
			}
			memset(&eh, 0, sizeof(eh));
			eh.channelLen = pn->channelLen;
			eh.payloadLen = pn->payloadLen;
			if (need > NE_GIANT_BUF)
			{
				/* a payload larger than the buffer goes from where it is */
				ne_spill_write(p, &eh, sizeof(eh));
				ne_spill_write(p + sizeof(eh), NE_PN_CHANNEL(pn), eh.channelLen);
				ne_spill_write(p + sizeof(eh) + eh.channelLen, NE_PN_PAYLOAD(pn),
							   eh.payloadLen);
				p += need;
				continue;
			}
			memcpy(buf + used, &eh, sizeof(eh));
			memcpy(buf + used + sizeof(eh), NE_PN_CHANNEL(pn), eh.channelLen);
			memcpy(buf + used + sizeof(eh) + eh.channelLen, NE_PN_PAYLOAD(pn),
				   eh.payloadLen);
			used += need;
		}
		/* the alignment padding too: readers read whole blocks */
		Assert(pos + total - (p + used) < MAXIMUM_ALIGNOF);
		if (used + MAXIMUM_ALIGNOF > NE_GIANT_BUF)
		{
			ne_spill_write(p, buf, used);
			p += used;
			used = 0;
		}
		memset(buf + used, 0, pos + total - (p + used));
		used = pos + total - p;
		ne_spill_write(p, buf, used);
		pfree(buf);
		if (walLog)
			ne_wal_log_batch(notifies, n);
	}

	if (naffected > 0)
		ne_overflow_after_publish(affected, naffected);

	if (warn)
		ereport(WARNING,
				(errmsg("NOTIFY queue is %.0f%% full", warnFill * 100),
				 warnPid != 0 ?
				 errdetail("The server process with PID %d is among those with the oldest transactions.", warnPid) : 0,
				 warnPid == 0 ? 0 : warnSending ?
				 errhint("That process is blocked sending notifications to a client that does not read them; only pg_terminate_backend(%d) frees the queue.", warnPid) :
				 errhint("The NOTIFY queue cannot be emptied until that process ends its current transaction.")));
}

/*
 * End state of a batch published by this backend.  Called from the commit
 * and abort callbacks: no lock, no allocation, cannot fail.  The tail never
 * passes a PENDING batch, so the ring bytes are still ours.
 */
void
ne_queue_set_state(uint64 batchPos, uint32 state)
{
	NotifyExtSlot *slot = &ne_shared->slots[ne_my_slot()];

	/*
	 * If the batch went to disk while PENDING, its state lives in our
	 * record now (spill.c), and its ring bytes may already hold others'.
	 * The spinlock orders this against the spiller taking the record.
	 */
	SpinLockAcquire(&slot->recMutex);
	if (slot->recPos == batchPos)
		slot->recState = state;
	else
		pg_atomic_write_u32(ne_batch_state(batchPos), state);
	SpinLockRelease(&slot->recMutex);
	pg_memory_barrier();
	/* from now on only its listeners' wakeupPos keep the batch */
	pg_atomic_write_u64(&slot->pendingPos, NE_INVALID_POS);
}
