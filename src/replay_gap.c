/*-------------------------------------------------------------------------
 *
 * replay_gap.c
 *	  What standby listeners lose when replay cannot queue a batch.
 *
 * Replay on a standby (replay.c) never waits and never fails because of
 * us: a replayed batch that cannot be queued even after skipping laggards
 * (larger than the queue can hold, a full disk, no memory) is dropped on
 * that standby.  Here, at the moment it is dropped, the startup process
 * counts for each listener it would have reached (the same lookup as a
 * queued batch's) what that listener loses, per channel (ne_lost_build),
 * and keeps it with the transaction's XID.  If the transaction commits,
 * each of those listeners that still listens gets the gap signal, reason
 * "not queued on standby" (ne_lost_report); if it aborts, nothing was
 * lost (ne_lost_free).
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "port/pg_bitutils.h"
#include "utils/memutils.h"

/*
 * Startup process: a replayed batch that could not be queued here (a full
 * queue that no skip could make room in, a full disk, no memory): the
 * listeners it would have reached and what each of them loses, told to
 * them (the gap signal) if its transaction commits.
 */
typedef struct NeLostSlot
{
	int			slotno;
	int			pid;			/* the listener then in that slot */
	TimestampTz since;
	NeGap		gap;			/* what it loses: counts only */
} NeLostSlot;

struct NeLost
{
	struct NeLost *next;
	uint64		atPos;			/* the queue's head when it was dropped */
	int			nslots;
	NeLostSlot	slots[FLEXIBLE_ARRAY_MEMBER];
};

/*
 * What a dropped batch would have brought: for each listener of its
 * database that it would have reached (the same lookup as ne_replay_enqueue's),
 * the count of its notifications on that listener's channels.  NULL if
 * nobody here would have got any, or if there is no memory for it (then
 * nobody is told; logged).  Takes registryLock and queueLock (shared).
 */
NeLost *
ne_lost_build(Oid dboid, const char *entries, Size len, uint32 n)
{
	int			words = ne_shared->bitmapWords;
	uint64	   *all = palloc_extended(sizeof(uint64) * words, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	uint64	   *chbits = palloc_extended(sizeof(uint64) * words, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	int		   *index = palloc_extended(sizeof(int) * ne_shared->nslots, MCXT_ALLOC_NO_OOM);
	NeLost	   *volatile lost = NULL;
	int			k = 0;
	Size		off;
	char		prev[NAMEDATALEN];

	if (all == NULL || chbits == NULL || index == NULL)
		goto done;

	LWLockAcquire(ne_shared->registryLock, LW_SHARED);
	off = 0;
	for (uint32 i = 0; i < n && off < len; i++)
	{
		NotifyExtEntryHeader eh;
		char		channel[NAMEDATALEN];

		memcpy(&eh, entries + off, sizeof(eh));
		memcpy(channel, entries + off + sizeof(eh), eh.channelLen);
		channel[eh.channelLen] = '\0';
		(void) ne_registry_bitmap(dboid, channel, all);
		ne_pattern_bitmap(dboid, channel, all);
		off += sizeof(eh) + eh.channelLen + eh.payloadLen;
	}

	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	for (int i = 0; i < ne_shared->nslots; i++)
	{
		NotifyExtSlot *slot = &ne_shared->slots[i];

		index[i] = -1;
		if ((all[i / 64] & (UINT64CONST(1) << (i % 64))) != 0 &&
			slot->pid != 0 && slot->dboid == dboid)
			index[i] = k++;
	}
	if (k > 0)
		lost = MemoryContextAllocExtended(TopMemoryContext,
										  offsetof(NeLost, slots) + sizeof(NeLostSlot) * k,
										  MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (lost != NULL)
	{
		lost->atPos = ne_shared->head;
		lost->nslots = k;
		for (int i = 0; i < ne_shared->nslots; i++)
		{
			if (index[i] < 0)
				continue;
			lost->slots[index[i]].slotno = i;
			lost->slots[index[i]].pid = ne_shared->slots[i].pid;
			lost->slots[index[i]].since = ne_shared->slots[i].listenSince;
		}
		off = 0;
		for (uint32 i = 0; i < n && off < len; i++)
		{
			NotifyExtEntryHeader eh;
			char		channel[NAMEDATALEN];

			memcpy(&eh, entries + off, sizeof(eh));
			memcpy(channel, entries + off + sizeof(eh), eh.channelLen);
			channel[eh.channelLen] = '\0';
			off += sizeof(eh) + eh.channelLen + eh.payloadLen;
			if (i == 0 || strcmp(prev, channel) != 0)
			{
				memset(chbits, 0, sizeof(uint64) * words);
				(void) ne_registry_bitmap(dboid, channel, chbits);
				ne_pattern_bitmap(dboid, channel, chbits);
				strlcpy(prev, channel, NAMEDATALEN);
			}
			for (int w = 0; w < words; w++)
			{
				uint64		b = chbits[w];

				while (b != 0)
				{
					int			s = w * 64 + pg_rightmost_one_pos64(b);

					b &= b - 1;
					if (s < ne_shared->nslots && index[s] >= 0)
						ne_gap_add(&lost->slots[index[s]].gap, channel);
				}
			}
		}
	}
	LWLockRelease(ne_shared->queueLock);
	LWLockRelease(ne_shared->registryLock);

done:
	if (lost == NULL && k != 0)
		ereport(LOG,
				(errmsg("notify_ext: out of memory: the listeners of a replayed batch that was not queued will not be told")));
	if (all)
		pfree(all);
	if (chbits)
		pfree(chbits);
	if (index)
		pfree(index);
	return lost;
}

/*
 * The transaction of dropped batches committed: each listener that would
 * have received some and still listens gets a gap (reason "not queued on
 * standby"), reported by its drain before anything it reads afterwards.
 */
void
ne_lost_report(NeLost *lost)
{
	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	for (NeLost *l = lost; l != NULL; l = l->next)
	{
		for (int i = 0; i < l->nslots; i++)
		{
			NeLostSlot *ls = &l->slots[i];
			NotifyExtSlot *slot = &ne_shared->slots[ls->slotno];

			if (slot->pid != ls->pid || slot->listenSince != ls->since ||
				ls->gap.count == 0)
				continue;		/* that listener is gone */
			if (slot->gap.count == 0 && !slot->gap.readError)
				slot->gap.fromPos = l->atPos;
			slot->gap.toPos = Max(slot->gap.toPos, l->atPos);
			ne_gap_merge(&slot->gap, &ls->gap);
			slot->gap.notQueued = true;
			slot->missed += ls->gap.count;
			pg_atomic_write_u32(&slot->gapPending, 1);
		}
	}
	LWLockRelease(ne_shared->queueLock);
	/* (a slot signalled twice gets one wake-up) */
	for (NeLost *l = lost; l != NULL; l = l->next)
		for (int i = 0; i < l->nslots; i++)
			ne_signal_listeners(&l->slots[i].slotno, 1);
}

void
ne_lost_free(NeLost *lost)
{
	while (lost != NULL)
	{
		NeLost	   *next = lost->next;

		pfree(lost);
		lost = next;
	}
}


/* put item at the head of list; returns the new list */
NeLost *
ne_lost_chain(NeLost *list, NeLost *item)
{
	item->next = list;
	return item;
}
