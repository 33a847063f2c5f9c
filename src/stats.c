/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Monitoring: the queue, each listening session and each channel, as
 *	  shared memory shows them (SQL version 1.1: ext_queue_status(),
 *	  ext_listener_status(), ext_channel_status() and the views
 *	  notify_ext_queue, notify_ext_listeners, notify_ext_channels).
 *
 * In the model of notify_ext.h: the queue is the ring of batches from the
 * tail to the head; a listener's backlog is the part of it from its slot's
 * wakeupPos on, and what it has not read there is the entries of the
 * COMMITTED batches of its database whose bitmap names its slot, on
 * channels its slot's bit is set for in the channel hash (minus those of a
 * half-sent batch that it already sent, as overflow.c counts a skip).
 *
 * Everything is copied under the locks (registryLock before queueLock,
 * both shared) into arrays allocated beforehand or with palloc, the locks
 * are released, and only then are rows built and database names looked
 * up.  The backlogs are counted in one walk over the batches queued: the
 * part in spill files without queueLock (ne_stats_walk_split), the part in
 * the ring under queueLock held shared, so that publishers wait at most
 * for a walk over the ring's batches, never over the disk's.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "fmgr.h"
#include "access/htup_details.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ext_queue_status);
PG_FUNCTION_INFO_V1(ext_listener_status);
PG_FUNCTION_INFO_V1(ext_channel_status);

/* what ext_listener_status() copies out of a listener slot */
typedef struct NeSlotStat
{
	int			pid;			/* 0: not a listener */
	Oid			dboid;
	uint64		wakeupPos;
	uint64		resumePos;
	uint32		resumeEntry;
	bool		sending;
	uint64		delivered;
	TimestampTz listenSince;
	uint32		skips;
	uint64		missed;
	int			channels;
	uint64		lagBytes;
	uint64		lagNotifications;
	TimestampTz oldestUnread;	/* 0: nothing unread */
} NeSlotStat;

static const char *
ne_full_action_name(int action)
{
	switch (action)
	{
		case NE_FULL_ERROR:
			return "error";
		case NE_FULL_SKIP:
			return "skip";
		case NE_FULL_TERMINATE:
			return "terminate";
	}
	return NULL;
}

/*
 * Walk the batches in [from, head): count the COMMITTED and PENDING ones
 * and their entries into *nbatches and *nentries; if stats is given (one
 * element per slot, listeners with pid != 0), add to each listener's
 * lagNotifications / oldestUnread what it has not read.  work: bitmapWords
 * words of scratch space, cand: nslots ints.
 *
 * Caller holds queueLock (shared is enough), and registryLock too when
 * stats is given.  Nothing here can fail.
 */
static void
ne_stats_walk(uint64 from, uint64 head, NeSlotStat *stats,
			  uint64 *work, int *cand,
			  uint64 *nbatches, uint64 *nentries)
{
	Size		hdrSize = ne_batch_header_size();
	Size		bitmapOffset = MAXALIGN(sizeof(NotifyExtBatchHeader));
	int			words = ne_shared->bitmapWords;
	uint64		pos = from;

	while (pos < head)
	{
		NotifyExtBatchHeader hdr;
		uint32		state;
		int			ncand = 0;
		uint64		epos;

		/* a spill file that cannot be read ends the walk (the drain reports it) */
		if (!ne_queue_read(pos, &hdr, sizeof(hdr)))
			break;
		/* a damaged ring must not make us loop forever under the lock */
		if (hdr.length < hdrSize || hdr.length > head - pos)
			break;
		state = ne_queue_batch_state(pos, &hdr);

		if (state == NE_BATCH_COMMITTED || state == NE_BATCH_PENDING)
		{
			(*nbatches)++;
			*nentries += hdr.nentries;
		}

		if (stats == NULL || state != NE_BATCH_COMMITTED)
		{
			pos += hdr.length;
			continue;
		}

		/* the listeners named in this batch that have not read it yet */
		if (!ne_queue_read(pos + bitmapOffset, work, sizeof(uint64) * words))
			break;
		for (int w = 0; w < words; w++)
		{
			uint64		bits = work[w];

			while (bits != 0)
			{
				int			i = w * 64 + pg_rightmost_one_pos64(bits);

				bits &= bits - 1;
				if (i >= ne_shared->nslots)
					break;
				if (stats[i].pid == 0 || stats[i].dboid != hdr.dboid ||
					stats[i].wakeupPos == NE_INVALID_POS ||
					stats[i].wakeupPos > pos)
					continue;
				cand[ncand++] = i;
			}
		}

		epos = pos + hdrSize;
		for (uint32 idx = 0; ncand > 0 && idx < hdr.nentries; idx++)
		{
			NotifyExtEntryHeader eh;
			NeChannelKey key;
			NeChannelEntry *entry;

			memset(&key, 0, sizeof(key));
			key.dboid = hdr.dboid;
			if (!ne_queue_read(epos, &eh, sizeof(eh)) ||
				!ne_queue_read(epos + sizeof(eh), key.channel,
							   Min(eh.channelLen, NAMEDATALEN - 1)))
				return;
			epos += sizeof(eh) + eh.channelLen + eh.payloadLen;

			entry = (NeChannelEntry *) hash_search(ne_channel_hash, &key,
												   HASH_FIND, NULL);
			if (entry == NULL && ne_shared->npatterns == 0)
				continue;
			for (int c = 0; c < ncand; c++)
			{
				int			i = cand[c];
				NeSlotStat *s = &stats[i];

				/* listened directly, or through one of its patterns */
				if ((entry == NULL ||
					 (entry->bits[i / 64] & (UINT64CONST(1) << (i % 64))) == 0) &&
					!ne_pattern_slot_matches(hdr.dboid, key.channel, i))
					continue;
				if (s->resumePos == pos && idx < s->resumeEntry)
					continue;	/* sent already, the rest of it is not */
				s->lagNotifications++;
				if (s->oldestUnread == 0)
					s->oldestUnread = hdr.time;
			}
		}
		pos += hdr.length;
	}
}

/*
 * ne_stats_walk over [from, head), the part of it in spill files without
 * queueLock: spilled bytes are written once and removed only behind the
 * tail (a file gone ends that part of the walk early), and walking
 * hundreds of megabytes under the lock would stall every publisher.  Caller
 * holds queueLock shared; it holds it again on return.  The counts are a
 * moment's picture, as any monitoring view's.
 */
static void
ne_stats_walk_split(uint64 from, uint64 head, NeSlotStat *stats,
					uint64 *work, int *cand,
					uint64 *nbatches, uint64 *nentries)
{
	uint64		diskEnd = ne_shared->spillPos;

	if (from < diskEnd)
	{
		LWLockRelease(ne_shared->queueLock);
		ne_stats_walk(from, diskEnd, stats, work, cand, nbatches, nentries);
		LWLockAcquire(ne_shared->queueLock, LW_SHARED);
		ne_spill_invalidate_cache();
		/* what was in the ring then and has been read since is gone */
		from = Max(diskEnd, ne_shared->tail);
	}
	if (from < head)
		ne_stats_walk(from, head, stats, work, cand, nbatches, nentries);
}

/*
 * ext_queue_status(): one row about the queue.
 */
Datum
ext_queue_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[20];
	bool		nulls[20];
	uint64	   *work;
	uint64		head,
				tail,
				ringSize,
				diskLimit,
				spillPos,
				spilledBytes,
				readErrors;
	uint64		nbatches = 0,
				nentries = 0;
	uint64		holderPos = NE_INVALID_POS;
	int			holderPid = 0;
	uint64		fullCount,
				skipCount,
				terminateCount,
				skipped;
	int			lastAction;
	const char *action;
	int			col = 0;

	ne_check_preloaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	work = palloc(sizeof(uint64) * ne_shared->bitmapWords);

	/* the tail moves lazily: bring it up to date first */
	(void) ne_queue_usage();

	ne_spill_prepare();
	diskLimit = ne_disk_limit_bytes();

	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	ne_spill_invalidate_cache();
	head = ne_shared->head;
	tail = ne_shared->tail;
	ringSize = ne_shared->ringSize;
	spillPos = ne_shared->spillPos;
	spilledBytes = ne_shared->spilledBytes;
	readErrors = ne_shared->spillReadErrors;
	fullCount = ne_shared->queueFullCount;
	skipCount = ne_shared->skipCount;
	terminateCount = ne_shared->terminateCount;
	skipped = ne_shared->skippedNotifications;
	lastAction = ne_shared->lastFullAction;
	holderPid = ne_queue_oldest_listener(&holderPos, NULL);
	ne_stats_walk_split(tail, head, NULL, work, NULL, &nbatches, &nentries);
	LWLockRelease(ne_shared->queueLock);
	pfree(work);

	memset(nulls, 0, sizeof(nulls));
	values[col++] = Int64GetDatum((int64) (ringSize + diskLimit));	/* capacity_bytes */
	values[col++] = Int64GetDatum((int64) (head - tail));	/* used_bytes */
	values[col++] = Float8GetDatum((double) (head - tail) / (double) (ringSize + diskLimit));
	values[col++] = Int64GetDatum((int64) nentries);	/* notifications_queued */
	values[col++] = Int64GetDatum((int64) nbatches);	/* batches_queued */
	values[col++] = Int64GetDatum((int64) head);	/* head_position */
	values[col++] = Int64GetDatum((int64) tail);	/* tail_position */
	if (holderPid != 0)			/* tail_holder_pid */
		values[col++] = Int32GetDatum(holderPid);
	else
		nulls[col++] = true;
	values[col++] = Int64GetDatum((int64) fullCount);	/* queue_full_count */
	action = ne_full_action_name(ne_queue_full_action);	/* queue_full_action */
	if (action != NULL)
		values[col++] = CStringGetTextDatum(action);
	else
		nulls[col++] = true;
	action = ne_full_action_name(lastAction);	/* last_full_action */
	if (action != NULL)
		values[col++] = CStringGetTextDatum(action);
	else
		nulls[col++] = true;
	values[col++] = Int64GetDatum((int64) skipCount);	/* listeners_skipped */
	values[col++] = Int64GetDatum((int64) terminateCount);	/* listeners_terminated */
	values[col++] = Int64GetDatum((int64) skipped); /* notifications_skipped */
	values[col++] = Int64GetDatum((int64) pg_atomic_read_u64(&ne_shared->notificationsCommitted));
	values[col++] = Int64GetDatum((int64) ringSize);	/* ring_bytes */
	values[col++] = Int64GetDatum((int64) diskLimit);	/* disk_limit_bytes */
	values[col++] = Int64GetDatum((int64) (spillPos > tail ? spillPos - tail : 0));	/* disk_bytes */
	values[col++] = Int64GetDatum((int64) spilledBytes);	/* spilled_bytes */
	values[col++] = Int64GetDatum((int64) readErrors);	/* spill_read_errors */
	Assert(col == lengthof(values));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * ext_listener_status(): one row per listening session (slot with a pid).
 * The sending flag is returned as is; notify_ext_listeners combines it
 * with pg_stat_activity into a state.
 */
Datum
ext_listener_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			nslots;
	NeSlotStat *stats;
	uint64	   *work;
	int		   *cand;
	uint64		head;
	uint64		from = NE_INVALID_POS;
	uint64		nbatches = 0,
				nentries = 0;
	HASH_SEQ_STATUS seq;
	NeChannelEntry *entry;

	ne_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	nslots = ne_shared->nslots;
	stats = palloc0(sizeof(NeSlotStat) * nslots);
	work = palloc(sizeof(uint64) * ne_shared->bitmapWords);
	cand = palloc(sizeof(int) * nslots);

	LWLockAcquire(ne_shared->registryLock, LW_SHARED);
	ne_spill_prepare();
	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	ne_spill_invalidate_cache();

	head = ne_shared->head;
	for (int i = 0; i < nslots; i++)
	{
		NotifyExtSlot *slot = &ne_shared->slots[i];
		NeSlotStat *s = &stats[i];

		if (slot->pid == 0)
			continue;
		s->pid = slot->pid;
		s->dboid = slot->dboid;
		s->wakeupPos = pg_atomic_read_u64(&slot->wakeupPos);
		s->resumePos = slot->resumePos;
		s->resumeEntry = slot->resumeEntry;
		s->sending = pg_atomic_read_u32(&slot->sending) != 0;
		s->delivered = pg_atomic_read_u64(&slot->delivered);
		s->listenSince = slot->listenSince;
		s->skips = slot->skips;
		s->missed = slot->missed;
		if (s->wakeupPos != NE_INVALID_POS && s->wakeupPos < head)
		{
			s->lagBytes = head - s->wakeupPos;
			if (s->wakeupPos < from)
				from = s->wakeupPos;
		}
	}

	/* channels per slot: the bits set for it in the channel hash */
	hash_seq_init(&seq, ne_channel_hash);
	while ((entry = (NeChannelEntry *) hash_seq_search(&seq)) != NULL)
	{
		for (int w = 0; w < ne_shared->bitmapWords; w++)
		{
			uint64		bits = entry->bits[w];

			while (bits != 0)
			{
				int			i = w * 64 + pg_rightmost_one_pos64(bits);

				bits &= bits - 1;
				if (i < nslots)
					stats[i].channels++;
			}
		}
	}

	if (from != NE_INVALID_POS)
		ne_stats_walk_split(from, head, stats, work, cand, &nbatches, &nentries);

	LWLockRelease(ne_shared->queueLock);
	LWLockRelease(ne_shared->registryLock);

	for (int i = 0; i < nslots; i++)
	{
		NeSlotStat *s = &stats[i];
		Datum		values[11];
		bool		nulls[11];
		char	   *dbname;
		int			col = 0;

		if (s->pid == 0)
			continue;
		memset(nulls, 0, sizeof(nulls));
		dbname = get_database_name(s->dboid);

		values[col++] = Int32GetDatum(s->pid);	/* pid */
		if (dbname != NULL)		/* database */
			values[col++] = CStringGetTextDatum(dbname);
		else
			nulls[col++] = true;
		values[col++] = BoolGetDatum(s->sending);	/* sending */
		values[col++] = Int32GetDatum(s->channels); /* channels */
		values[col++] = Int64GetDatum((int64) s->lagBytes); /* lag_bytes */
		values[col++] = Int64GetDatum((int64) s->lagNotifications);
		if (s->oldestUnread != 0)	/* oldest_unread_at */
			values[col++] = TimestampTzGetDatum(s->oldestUnread);
		else
			nulls[col++] = true;
		values[col++] = Int64GetDatum((int64) s->delivered);	/* delivered */
		values[col++] = Int64GetDatum((int64) s->missed);	/* missed */
		values[col++] = Int64GetDatum((int64) s->skips);	/* times_skipped */
		values[col++] = TimestampTzGetDatum(s->listenSince);	/* listening_since */
		Assert(col == lengthof(values));

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(stats);
	pfree(work);
	pfree(cand);
	return (Datum) 0;
}

/*
 * ext_channel_status(): one row per (database, channel) listened to.
 */
typedef struct NeChannelStat
{
	Oid			dboid;
	char		channel[NAMEDATALEN];
	int			listeners;
	uint64		sent;
} NeChannelStat;

Datum
ext_channel_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	NeChannelEntry *entry;
	NeChannelStat *chans;
	long		max;
	long		n = 0;

	ne_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	LWLockAcquire(ne_shared->registryLock, LW_SHARED);
	max = hash_get_num_entries(ne_channel_hash);
	chans = palloc(sizeof(NeChannelStat) * Max(max, 1));
	hash_seq_init(&seq, ne_channel_hash);
	while ((entry = (NeChannelEntry *) hash_seq_search(&seq)) != NULL)
	{
		if (n >= max)
		{
			hash_seq_term(&seq);
			break;
		}
		chans[n].dboid = entry->key.dboid;
		strlcpy(chans[n].channel, entry->key.channel, NAMEDATALEN);
		chans[n].listeners = entry->nlisteners;
		chans[n].sent = pg_atomic_read_u64(&entry->sent);
		n++;
	}
	LWLockRelease(ne_shared->registryLock);

	for (long i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		char	   *dbname = get_database_name(chans[i].dboid);

		if (dbname != NULL)
			values[0] = CStringGetTextDatum(dbname);
		else
			nulls[0] = true;
		values[1] = CStringGetTextDatum(chans[i].channel);
		values[2] = Int32GetDatum(chans[i].listeners);
		values[3] = Int64GetDatum((int64) chans[i].sent);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(chans);
	return (Datum) 0;
}
