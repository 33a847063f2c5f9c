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
 * See notify_ext.h for the layout and the locking rules.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

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
 * Move the tail up to the oldest position anybody still needs: the oldest
 * unconsumed batch of any listener, or the oldest batch still PENDING
 * (its publisher has yet to write its state word).  Reads only the slots,
 * never the ring.  Caller holds queueLock exclusively.
 */
static void
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
}

/*
 * The pid of a listener holding the oldest unread batch, or 0; *pos gets
 * that batch's position (NE_INVALID_POS if none), and *sending (if not
 * NULL) whether that listener is in the middle of writing to its client
 * (then it is blocked on a client that does not read, not in a
 * transaction).  Caller holds queueLock.
 */
int
ne_queue_oldest_listener(uint64 *pos, bool *sending)
{
	uint64		min = NE_INVALID_POS;
	int			pid = 0;

	if (sending)
		*sending = false;

	for (int i = 0; i < ne_shared->nslots; i++)
	{
		NotifyExtSlot *slot = &ne_shared->slots[i];
		uint64		w;

		if (slot->pid == 0)
			continue;
		w = pg_atomic_read_u64(&slot->wakeupPos);
		if (w < min)
		{
			min = w;
			pid = slot->pid;
			if (sending)
				*sending = pg_atomic_read_u32(&slot->sending) != 0;
		}
	}
	*pos = min;
	return pid;
}

double
ne_queue_usage(void)
{
	double		usage;

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	ne_queue_advance_tail_locked();
	usage = (double) (ne_shared->head - ne_shared->tail) /
		(double) ne_shared->ringSize;
	LWLockRelease(ne_shared->queueLock);
	return usage;
}

static Size
ne_entry_size(NePendingNotify *n)
{
	return sizeof(NotifyExtEntryHeader) + n->channelLen + n->payloadLen;
}

/*
 * Publish the current transaction's notifications (already deduplicated, in
 * the order they were sent) as one PENDING batch.
 *
 * Returns the batch's position, or NE_INVALID_POS if no backend listens on
 * any of the channels (then nothing is written).  The listener slots to wake
 * after commit are returned in *wakeSlotsOut (allocated in the current
 * memory context), the calling backend's own slot excluded.
 *
 * Errors (queue full) are thrown before anything is written.
 */
uint64
ne_queue_publish(NePendingNotify **notifies, int n, int **wakeSlotsOut, int *nwake)
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

	*nwake = 0;

	if (mySlot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("notify_ext: this process cannot send notifications")));

	for (int i = 0; i < n; i++)
		total += ne_entry_size(notifies[i]);
	total = MAXALIGN(total);

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
		return NE_INVALID_POS;
	}
	wakeSlots = palloc(sizeof(int) * ne_shared->nslots);
	*wakeSlotsOut = wakeSlots;

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);

	if (ne_shared->ringSize - (ne_shared->head - ne_shared->tail) < total)
		ne_queue_advance_tail_locked();
	if (ne_shared->ringSize - (ne_shared->head - ne_shared->tail) < total)
	{
		/* full: notify_ext.queue_full_action may move the laggards (overflow.c) */
		ne_shared->queueFullCount++;
		if (ne_queue_make_room(total, &affected, &naffected))
			ne_queue_advance_tail_locked();
	}
	if (ne_shared->ringSize - (ne_shared->head - ne_shared->tail) < total)
	{
		bool		sending;
		uint64		oldest;
		int			pid = ne_queue_oldest_listener(&oldest, &sending);
		uint64		ringSize = ne_shared->ringSize;

		LWLockRelease(ne_shared->queueLock);
		LWLockRelease(ne_shared->registryLock);
		if (total > ringSize)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errdetail("The transaction's %d notifications need %zu bytes; notify_ext.queue_size is %llu bytes.",
							   n, total, (unsigned long long) ringSize),
					 errhint("Increase notify_ext.queue_size, or send fewer notifications per transaction.")));
		else if (pid != 0 && sending)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errdetail("The server process with PID %d is among those with the oldest unread notifications; it is blocked sending notifications to a client that does not read them.", pid),
					 errhint("Only terminating that session frees the queue: pg_terminate_backend(%d); pg_cancel_backend() cannot interrupt it.  Or increase notify_ext.queue_size.", pid)));
		else if (pid != 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errdetail("The server process with PID %d is among those with the oldest unread notifications; it is in a transaction or running a statement, and receives nothing until its transaction ends.", pid),
					 errhint("End that session's transaction (or pg_cancel_backend(%d) its statement), or increase notify_ext.queue_size.", pid)));
		else
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many notifications in the NOTIFY queue"),
					 errhint("Increase notify_ext.queue_size.")));
	}

	pos = ne_shared->head;
	pg_atomic_write_u64(&ne_shared->slots[mySlot].pendingPos, pos);

	/* header, with the state word initialised before anything else */
	memset(&hdr, 0, sizeof(hdr));
	hdr.dboid = MyDatabaseId;
	hdr.length = (uint32) total;
	hdr.srcPid = MyProcPid;
	hdr.nentries = (uint32) n;
	hdr.time = GetCurrentTimestamp();
	ne_ring_write(pos, &hdr, sizeof(hdr));
	pg_atomic_init_u32(ne_batch_state(pos), NE_BATCH_PENDING);
	ne_ring_write(pos + MAXALIGN(sizeof(NotifyExtBatchHeader)), bitmap,
				  sizeof(uint64) * ne_shared->bitmapWords);

	/* entries */
	{
		uint64		p = pos + hdrSize;

		for (int i = 0; i < n; i++)
		{
			NotifyExtEntryHeader eh;

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

	/*
	 * Like core, warn (at most every 5 s) once the queue is half full.  The
	 * tail moves lazily: bring it up to date before judging.
	 */
	if ((ne_shared->head - ne_shared->tail) * 2 >= ne_shared->ringSize)
		ne_queue_advance_tail_locked();
	if ((ne_shared->head - ne_shared->tail) * 2 >= ne_shared->ringSize)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (TimestampDifferenceExceeds(ne_shared->lastFullWarn, now,
									   NE_QUEUE_FULL_WARN_INTERVAL))
		{
			uint64		oldest;

			warn = true;
			warnPid = ne_queue_oldest_listener(&oldest, &warnSending);
			warnFill = (double) (ne_shared->head - ne_shared->tail) /
				(double) ne_shared->ringSize;
			ne_shared->lastFullWarn = now;
		}
	}

	LWLockRelease(ne_shared->queueLock);
	LWLockRelease(ne_shared->registryLock);
	pfree(bitmap);
	pfree(runEntry);
	pfree(runCount);

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

	return pos;
}

/*
 * End state of a batch published by this backend.  Called from the commit
 * and abort callbacks: no lock, no allocation, cannot fail.  The tail never
 * passes a PENDING batch, so the ring bytes are still ours.
 */
void
ne_queue_set_state(uint64 batchPos, uint32 state)
{
	pg_memory_barrier();
	pg_atomic_write_u32(ne_batch_state(batchPos), state);
	pg_memory_barrier();
	/* from now on only its listeners' wakeupPos keep the batch */
	pg_atomic_write_u64(&ne_shared->slots[ne_my_slot()].pendingPos, NE_INVALID_POS);
}
