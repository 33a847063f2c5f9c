/*-------------------------------------------------------------------------
 *
 * deliver.c
 *	  Getting notifications to the client: wake-ups, the drain, and the
 *	  NotificationResponse ('A') messages.
 *
 * Two places send:
 *	  - ne_putmessage(), our wrapper around PqCommMethods->putmessage, sends
 *		whatever is readable right before a ReadyForQuery whose status is 'I'
 *		(idle, no transaction open).  That is core's wire order: a self-notify
 *		or whatever arrived during a transaction comes after CommandComplete
 *		and before ReadyForQuery, and a session inside a transaction block
 *		('T' or 'E') receives nothing until the block ends, whether by COMMIT
 *		or by ROLLBACK of an aborted block.
 *	  - the PRE_COMMIT callback of the empty transaction that an idle backend
 *		runs for a PROCSIG_CATCHUP_INTERRUPT (xact.c); that path does not
 *		flush, so we do.
 *
 * The drain cannot fail: under queueLock it copies the entries meant for us
 * into ne_buf (allocated when the session started listening) as ready-made
 * 'A' message bodies, moves our wakeupPos, releases the lock and only then
 * sends.  A batch too large for the buffer is drained in several rounds
 * (resumeBatch/resumeOffset remember where).  A notification larger than
 * the buffer (notify_ext.max_payload_size above 64kB) gets memory of its
 * own, allocated without throwing, filled a piece at a time (ne_fill_big)
 * and freed once sent.  Conversion to the client encoding, the only step
 * that can throw, runs under PG_TRY in a memory context with a
 * preallocated block; a notification that cannot be converted is dropped
 * and logged, instead of breaking the protocol.  One that cannot be had
 * for want of memory (its buffer or its conversion) is reported to the
 * client with the gap signal, at its place.
 *
 * Reading goes through ne_queue_read, which finds a position in the ring
 * or in a spill file; a spill file that cannot be read skips the session
 * to the ring's part of the queue and reports the gap (reason "read
 * error").  A round looks at no more than NE_DRAIN_DISK_BUDGET bytes of
 * spilled batches before it lets publishers in.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/procsignal.h"
#include "tcop/dest.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#define NE_BUF_SIZE (64 * 1024)

static const PQcommMethods *ne_prev_methods = NULL;
static PQcommMethods ne_methods;

static char *ne_buf = NULL;
static MemoryContext ne_deliver_cxt = NULL;

/* the gap signal: copied out of the slot under the lock, sent after it */
#define NE_GAPBUF_SIZE 4096
static char *ne_gapbuf = NULL;
static NeGap ne_gap;

/*
 * A notification larger than ne_buf, in memory of its own until sent: the
 * drain copies its header, ne_fill_big its payload, from ne_bigSrc, in
 * pieces with the lock taken for each.
 */
#define NE_BIG_PIECE (1024 * 1024)
static char *ne_bigbuf = NULL;
static uint32 ne_biglen = 0;
static uint64 ne_bigPos;		/* its batch */
static uint64 ne_bigSrc;		/* its payload's position */
static uint32 ne_bigLen;		/* its payload's length */
static uint32 ne_bigIdx;		/* its entry number in the batch */
static uint64 ne_bigNext;		/* the position of the entry after it */

/* one that could not get that memory: logged after the lock is released */
static uint32 ne_oom_bytes = 0;
static char ne_oom_channel[NAMEDATALEN];

/* where to resume inside a batch that did not fit in ne_buf */
static uint64 resumeBatch = NE_INVALID_POS;
static uint32 resumeEntry = 0;
static uint64 resumeOffset = 0;

static int	ne_putmessage(char msgtype, const char *s, size_t len);

void
ne_deliver_reset_resume(void)
{
	resumeBatch = NE_INVALID_POS;
	resumeEntry = 0;
	resumeOffset = 0;
}

/*
 * Called before a session's first LISTEN is registered: everything the
 * drain will need is allocated here, where an error is still harmless.
 */
void
ne_deliver_prepare(void)
{
	if (whereToSendOutput != DestRemote)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("notify_ext: only sessions connected to a client can listen")));

	if (ne_deliver_cxt == NULL)
		ne_deliver_cxt = AllocSetContextCreate(TopMemoryContext,
											   "notify_ext delivery",
											   64 * 1024, 64 * 1024,
											   ALLOCSET_DEFAULT_MAXSIZE);
	if (ne_buf == NULL)
		ne_buf = MemoryContextAlloc(TopMemoryContext, NE_BUF_SIZE);
	ne_spill_prepare();
	if (ne_gapbuf == NULL)
		ne_gapbuf = MemoryContextAlloc(TopMemoryContext, NE_GAPBUF_SIZE);

	if (PqCommMethods != &ne_methods)
	{
		ne_prev_methods = PqCommMethods;
		ne_methods = *PqCommMethods;
		ne_methods.putmessage = ne_putmessage;
		PqCommMethods = &ne_methods;
	}
}

/*
 * Deliver whatever may be waiting for us: called right before
 * ReadyForQuery('I') and from the empty transaction of an idle wake-up.
 * The signaled flag is cleared before wakeupPos is looked at, so a batch
 * published after this look finds the flag clear and signals us again.
 */
void
ne_deliver_if_pending(bool flush)
{
	int			slotno = ne_my_slot();
	NotifyExtSlot *slot;

	if (!ne_slot_active || slotno < 0)
		return;
	slot = &ne_shared->slots[slotno];
	(void) pg_atomic_fetch_and_u64(&slot->wake, ~NE_WAKE_SIGNALED);
	pg_memory_barrier();
	if (pg_atomic_read_u64(&slot->wakeupPos) != NE_INVALID_POS ||
		pg_atomic_read_u32(&slot->gapPending) != 0)
		ne_deliver(flush);
}

static int
ne_putmessage(char msgtype, const char *s, size_t len)
{
	if (msgtype == 'Z' && len == 1 && s[0] == 'I')
		ne_deliver_if_pending(false);
	return ne_prev_methods->putmessage(msgtype, s, len);
}

/* spilled bytes one drain round may look at before it lets others in */
#define NE_DRAIN_DISK_BUDGET (4 * 1024 * 1024)

/* a spill file that could not be read: logged after the lock is released */
static bool ne_read_failed = false;
static char ne_read_error[128];
static uint64 ne_read_from;
static uint64 ne_read_to;

/*
 * A spill file could not be read at pos: we skip to the first batch in the
 * ring (everything below spillPos is on disk), and the gap signal tells
 * the client that notifications were lost, how many unknown.  Caller holds
 * queueLock exclusively.  Returns where to go on.
 */
static uint64
ne_drain_read_error(NotifyExtSlot *slot, uint64 pos)
{
	uint64		to = ne_shared->spillPos;

	if (slot->gap.count == 0 && !slot->gap.readError)
		slot->gap.fromPos = pos;
	slot->gap.toPos = to;
	slot->gap.readError = true;
	strlcpy(slot->gap.readErrorMsg, ne_spill_last_error(),
			sizeof(slot->gap.readErrorMsg));
	pg_atomic_write_u32(&slot->gapPending, 1);
	slot->resumePos = NE_INVALID_POS;
	resumeBatch = NE_INVALID_POS;
	ne_shared->spillReadErrors++;

	ne_read_failed = true;
	strlcpy(ne_read_error, ne_spill_last_error(), sizeof(ne_read_error));
	ne_read_from = pos;
	ne_read_to = to;
	return to;
}

/*
 * Copy what is readable for us into ne_buf as a sequence of
 * [uint32 body length]['A' message body].  Returns bytes used; *more is set
 * when the buffer filled up before we were done.
 */
static Size
ne_drain_some(bool *more, bool *gotGap)
{
	int			slotno = ne_my_slot();
	NotifyExtSlot *slot = &ne_shared->slots[slotno];
	Size		hdrSize = ne_batch_header_size();
	Size		bitOffset = MAXALIGN(sizeof(NotifyExtBatchHeader)) +
		sizeof(uint64) * (slotno / 64);
	uint64		myBit = UINT64CONST(1) << (slotno % 64);
	Size		used = 0;
	uint64		pos;
	uint64		head;
	uint64		diskScanned = 0;

	*more = false;
	*gotGap = false;

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	/* spilled headers may have been settled since we last looked */
	ne_spill_invalidate_cache();

	/*
	 * We were skipped (overflow.c) or lost data to a spill file: report the
	 * gap before anything read after it.  What this round would read comes
	 * after the gap.
	 */
	if (pg_atomic_read_u32(&slot->gapPending) != 0)
	{
		ne_gap = slot->gap;
		memset(&slot->gap, 0, sizeof(slot->gap));
		pg_atomic_write_u32(&slot->gapPending, 0);
		/* a skip moved us (and cleared resumePos); an entry we lost did not */
		if (slot->resumePos != resumeBatch)
			resumeBatch = NE_INVALID_POS;
		*gotGap = true;
		*more = true;
		LWLockRelease(ne_shared->queueLock);
		return 0;
	}

	pos = pg_atomic_read_u64(&slot->wakeupPos);
	if (pos == NE_INVALID_POS)
	{
		LWLockRelease(ne_shared->queueLock);
		return 0;
	}
	head = ne_shared->head;

	while (pos < head && !*more)
	{
		NotifyExtBatchHeader hdr;
		uint64		word;
		uint32		state;
		uint64		epos;
		uint32		idx;
		bool		onDisk = pos < ne_shared->spillPos;

		/* on disk, look at a bounded amount per round, then let others in */
		if (onDisk && diskScanned >= NE_DRAIN_DISK_BUDGET)
		{
			*more = true;
			break;
		}
		if (!ne_queue_read(pos, &hdr, sizeof(hdr)) ||
			!ne_queue_read(pos + bitOffset, &word, sizeof(word)))
		{
			pos = ne_drain_read_error(slot, pos);
			*more = true;
			break;
		}
		state = ne_queue_batch_state(pos, &hdr);
		if (onDisk)
			diskScanned += hdr.length;

		if ((word & myBit) == 0 || state == NE_BATCH_ABORTED ||
			hdr.dboid != MyDatabaseId)
		{
			pos += hdr.length;
			continue;
		}
		if (state == NE_BATCH_PENDING)
			break;				/* its publisher wakes us when it ends */

		if (resumeBatch == pos)
		{
			idx = resumeEntry;
			epos = resumeOffset;
		}
		else
		{
			idx = 0;
			epos = pos + hdrSize;
		}

		for (; idx < hdr.nentries; idx++)
		{
			NotifyExtEntryHeader eh;
			char		channel[NAMEDATALEN];
			NeLocalChannel *lc;

			if (!ne_queue_read(epos, &eh, sizeof(eh)) ||
				!ne_queue_read(epos + sizeof(eh), channel, eh.channelLen))
				goto read_error;
			channel[eh.channelLen] = '\0';

			lc = ne_local_lookup(channel);
			if ((lc != NULL && lc->committed && lc->startPos <= pos) ||
				ne_pattern_local_match(channel, pos))
			{
				uint32		bodyLen = 4 + eh.channelLen + 1 + eh.payloadLen + 1;
				char	   *p;
				uint32		npid;

				if (used + sizeof(uint32) + bodyLen > NE_BUF_SIZE)
				{
					uint64		next = epos + sizeof(eh) + eh.channelLen + eh.payloadLen;

					if (used > 0)
					{
						/* the buffer is full: this entry next round */
						resumeBatch = pos;
						resumeEntry = idx;
						resumeOffset = epos;
						/* a skip counts only what we have not sent */
						slot->resumePos = pos;
						slot->resumeEntry = idx;
						*more = true;
						break;
					}

					/*
					 * A payload larger than the buffer: a buffer of its own,
					 * freed once sent.  Without the memory, the listener is
					 * told it missed it (the gap signal), never cut off.
					 */
					ne_bigbuf = MemoryContextAllocExtended(TopMemoryContext, bodyLen,
														   MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
					if (ne_bigbuf == NULL)
					{
						if (slot->gap.count == 0 && !slot->gap.readError)
							slot->gap.fromPos = pos;
						slot->gap.toPos = pos;
						slot->gap.outOfMemory = true;
						ne_gap_add(&slot->gap, channel);
						pg_atomic_write_u32(&slot->gapPending, 1);
						ne_oom_bytes = bodyLen;
						strlcpy(ne_oom_channel, channel, NAMEDATALEN);
					}
					else
					{
						uint32		npid = pg_hton32((uint32) hdr.srcPid);

						/* the payload is copied by ne_fill_big, in pieces */
						memcpy(ne_bigbuf, &npid, 4);
						memcpy(ne_bigbuf + 4, channel, eh.channelLen + 1);
						ne_bigbuf[bodyLen - 1] = '\0';
						ne_biglen = bodyLen;
						ne_bigPos = pos;
						ne_bigSrc = epos + sizeof(eh) + eh.channelLen;
						ne_bigLen = eh.payloadLen;
						ne_bigIdx = idx;
						ne_bigNext = next;
						/* until it is all copied, a skip counts it as missed */
						resumeBatch = pos;
						resumeEntry = idx;
						resumeOffset = epos;
						slot->resumePos = pos;
						slot->resumeEntry = idx;
						*more = true;
						break;
					}
					/* go on after it next round */
					resumeBatch = pos;
					resumeEntry = idx + 1;
					resumeOffset = next;
					slot->resumePos = pos;
					slot->resumeEntry = idx + 1;
					*more = true;
					break;
				}
				p = ne_buf + used;
				npid = pg_hton32((uint32) hdr.srcPid);
				memcpy(p + sizeof(uint32), &npid, 4);
				memcpy(p + sizeof(uint32) + 4, channel, eh.channelLen + 1);
				if (!ne_queue_read(epos + sizeof(eh) + eh.channelLen,
								   p + sizeof(uint32) + 4 + eh.channelLen + 1,
								   eh.payloadLen))
					goto read_error;
				memcpy(p, &bodyLen, sizeof(uint32));
				p[sizeof(uint32) + bodyLen - 1] = '\0';
				used += sizeof(uint32) + bodyLen;
			}
			epos += sizeof(eh) + eh.channelLen + eh.payloadLen;
		}
		if (!*more)
		{
			resumeBatch = NE_INVALID_POS;
			slot->resumePos = NE_INVALID_POS;
			pos += hdr.length;
		}
		continue;

read_error:
		/* what was copied of this batch is sent; the rest is lost */
		pos = ne_drain_read_error(slot, pos);
		*more = true;
		break;
	}

	pg_atomic_write_u64(&slot->wakeupPos, pos >= head ? NE_INVALID_POS : pos);

	/* reading spilled data may free spill files: remove them now */
	if (ne_shared->diskSegLow < ne_shared->diskSegEnd)
		ne_queue_advance_tail_locked();

	LWLockRelease(ne_shared->queueLock);
	return used;
}

/*
 * A notification we could not send for want of memory (converting it to
 * the client encoding): the listener is told with the gap signal, which the
 * drain sends next, before anything later.
 */
static void
ne_lost_for_memory(const char *channel, uint32 bodyLen)
{
	NotifyExtSlot *slot = &ne_shared->slots[ne_my_slot()];

	LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
	if (slot->gap.count == 0 && !slot->gap.readError)
		slot->gap.fromPos = slot->gap.toPos = pg_atomic_read_u64(&slot->wakeupPos);
	slot->gap.outOfMemory = true;
	ne_gap_add(&slot->gap, channel);
	pg_atomic_write_u32(&slot->gapPending, 1);
	LWLockRelease(ne_shared->queueLock);
	ereport(LOG,
			(errmsg("notify_ext: out of memory converting a notification of %u bytes on channel \"%s\" to the client encoding",
					bodyLen, channel),
			 errdetail("The listening session was told that it missed it.")));
}

/*
 * Send one message body, converting channel and payload to the client
 * encoding when it differs.  Never throws.
 */
void
ne_send_one(const char *body, uint32 bodyLen)
{
	const char *channel;
	const char *payload;
	volatile uint32 holdoff = InterruptHoldoffCount;
	MemoryContext old;

	if (pg_get_client_encoding() == GetDatabaseEncoding())
	{
		(void) ne_prev_methods->putmessage('A', body, bodyLen);
		return;
	}

	channel = body + 4;
	payload = channel + strlen(channel) + 1;

	old = MemoryContextSwitchTo(ne_deliver_cxt);
	PG_TRY();
	{
		StringInfoData buf;
		char	   *c = pg_server_to_client(channel, strlen(channel));
		char	   *p = pg_server_to_client(payload, strlen(payload));

		initStringInfo(&buf);
		appendBinaryStringInfo(&buf, body, 4);
		appendBinaryStringInfo(&buf, c, strlen(c) + 1);
		appendBinaryStringInfo(&buf, p, strlen(p) + 1);
		(void) ne_prev_methods->putmessage('A', buf.data, buf.len);
	}
	PG_CATCH();
	{
		int			code = geterrcode();

		InterruptHoldoffCount = holdoff;
		MemoryContextSwitchTo(old);
		FlushErrorState();
		if (code == ERRCODE_OUT_OF_MEMORY)
			ne_lost_for_memory(channel, bodyLen);
		else
			ereport(LOG,
					(errmsg("notify_ext: dropped a notification on channel \"%s\" that cannot be converted to the client encoding",
							channel)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(ne_deliver_cxt);
}

/* a NoticeResponse body built by overflow.c (the gap signal); never throws */
void
ne_put_notice(const char *body, Size len)
{
	(void) ne_prev_methods->putmessage('N', body, len);
}

/*
 * Copy the payload of the large notification the drain found into
 * ne_bigbuf, a piece at a time under queueLock (shared: that keeps skips
 * and spills away, and the bytes where ne_queue_read finds them), so that
 * publishers never wait for a long copy.  If we were skipped meanwhile, the
 * notification is dropped (the gap signal counts it); if a spill file
 * cannot be read, that is the drain's read error.  Returns whether
 * ne_bigbuf is ready to send; never throws.
 */
static bool
ne_fill_big(void)
{
	int			slotno = ne_my_slot();
	NotifyExtSlot *slot = &ne_shared->slots[slotno];
	char	   *dst = ne_bigbuf + ne_biglen - 1 - ne_bigLen;
	uint32		done = 0;
	bool		ok = true;

	while (ok)
	{
		uint32		n = Min(ne_bigLen - done, (uint32) NE_BIG_PIECE);
		bool		readOk;

		LWLockAcquire(ne_shared->queueLock, done + n < ne_bigLen ? LW_SHARED : LW_EXCLUSIVE);
		ne_spill_invalidate_cache();
		if (pg_atomic_read_u64(&slot->wakeupPos) != ne_bigPos ||
			pg_atomic_read_u32(&slot->gapPending) != 0)
		{
			LWLockRelease(ne_shared->queueLock);
			ok = false;			/* skipped past it */
			break;
		}
		readOk = ne_queue_read(ne_bigSrc + done, dst + done, n);
		if (readOk)
			done += n;
		if (!readOk || done == ne_bigLen)
		{
			/* exclusive: we change our slot's resume point or gap */
			if (LWLockHeldByMeInMode(ne_shared->queueLock, LW_SHARED))
			{
				LWLockRelease(ne_shared->queueLock);
				LWLockAcquire(ne_shared->queueLock, LW_EXCLUSIVE);
				if (pg_atomic_read_u64(&slot->wakeupPos) != ne_bigPos ||
					pg_atomic_read_u32(&slot->gapPending) != 0)
				{
					LWLockRelease(ne_shared->queueLock);
					ok = false;
					break;
				}
			}
			if (!readOk)
			{
				uint64		to = ne_drain_read_error(slot, ne_bigPos);

				pg_atomic_write_u64(&slot->wakeupPos,
									to >= ne_shared->head ? NE_INVALID_POS : to);
				ok = false;
			}
			else
			{
				/* sent, as far as a skip is concerned: go on after it */
				resumeBatch = ne_bigPos;
				resumeEntry = ne_bigIdx + 1;
				resumeOffset = ne_bigNext;
				slot->resumePos = ne_bigPos;
				slot->resumeEntry = ne_bigIdx + 1;
			}
			LWLockRelease(ne_shared->queueLock);
			break;
		}
		LWLockRelease(ne_shared->queueLock);
	}
	return ok;
}

/*
 * Send everything readable for this session.  flush: push it to the client
 * now (idle wake-up); otherwise the caller's ReadyForQuery flushes.
 */
void
ne_deliver(bool flush)
{
	bool		more = true;
	bool		sent = false;

	if (!ne_slot_active || ne_buf == NULL || ne_prev_methods == NULL ||
		whereToSendOutput != DestRemote)
		return;

	/* monitoring and the queue-full hint read this: we may block below */
	pg_atomic_write_u32(&ne_shared->slots[ne_my_slot()].sending, 1);

	while (more)
	{
		bool		gotGap;
		Size		used = ne_drain_some(&more, &gotGap);
		Size		off = 0;
		uint64		nsent = 0;

		if (ne_oom_bytes > 0)
		{
			ereport(LOG,
					(errmsg("notify_ext: out of memory for a notification of %u bytes on channel \"%s\"",
							ne_oom_bytes, ne_oom_channel),
					 errdetail("The listening session was told that it missed it.")));
			ne_oom_bytes = 0;
		}
		if (ne_read_failed)
		{
			ne_read_failed = false;
			ereport(LOG,
					(errmsg("notify_ext: notifications spilled to disk could not be read: %s",
							ne_read_error),
					 errdetail("The listening session skipped the queue from position %llu to %llu and was told so.",
							   (unsigned long long) ne_read_from,
							   (unsigned long long) ne_read_to)));
		}

		while (off < used)
		{
			uint32		bodyLen;

			memcpy(&bodyLen, ne_buf + off, sizeof(uint32));
			off += sizeof(uint32);
			ne_send_one(ne_buf + off, bodyLen);
			off += bodyLen;
			sent = true;
			nsent++;
		}
		if (ne_bigbuf != NULL)
		{
			if (ne_fill_big())
			{
				ne_send_one(ne_bigbuf, ne_biglen);
				sent = true;
				nsent++;
			}
			pfree(ne_bigbuf);
			ne_bigbuf = NULL;
		}
		if (nsent > 0)
			pg_atomic_fetch_add_u64(&ne_shared->slots[ne_my_slot()].delivered, nsent);
		/* a notification lost while sending: its gap signal comes next */
		if (pg_atomic_read_u32(&ne_shared->slots[ne_my_slot()].gapPending) != 0)
			more = true;
		if (gotGap)
		{
			ne_gap_send(&ne_gap, ne_gapbuf, NE_GAPBUF_SIZE);
			sent = true;
		}
	}

	if (flush && sent)
		(void) ne_prev_methods->flush();

	pg_atomic_write_u32(&ne_shared->slots[ne_my_slot()].sending, 0);
}

/*
 * Wake the listeners of a batch that just ended.  Runs in the commit and
 * abort callbacks: a failed signal (backend gone) is ignored.  A listener
 * that has a wake-up pending and has not started draining yet will see
 * this batch too, so it is not signalled again.
 *
 * The owner's pid and the signaled flag are one atomic word (see THE
 * WAKE-UP PROTOCOL in notify_ext.h): the flag is set by a CAS on the very
 * word the pid was read from, so it can never be set on behalf of an owner
 * that has since left the slot.
 */
void
ne_signal_listeners(const int *slots, int n)
{
	pg_memory_barrier();
	for (int i = 0; i < n; i++)
	{
		NotifyExtSlot *slot = &ne_shared->slots[slots[i]];
		uint64		w = pg_atomic_read_u64(&slot->wake);

		for (;;)
		{
			if (NE_WAKE_PID(w) == 0 || (w & NE_WAKE_SIGNALED) != 0)
				break;			/* nobody there, or a wake-up is on its way */
			/* test/client/test_wakeup_race.py stops here: NE_WAKE_WINDOW */
			if (pg_atomic_compare_exchange_u64(&slot->wake, &w,
											   w | NE_WAKE_SIGNALED))
			{
				(void) SendProcSignal(NE_WAKE_PID(w), PROCSIG_CATCHUP_INTERRUPT,
									  (BackendId) (slots[i] + 1));
				break;
			}
			/* the word changed under us: w holds its new value, decide again */
		}
	}
}
