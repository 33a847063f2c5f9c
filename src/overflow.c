/*-------------------------------------------------------------------------
 *
 * overflow.c
 *	  What a full queue does to the listeners that hold it:
 *	  notify_ext.queue_full_action, and the gap signal.
 *
 * When a notifying commit finds the ring full because listeners have not
 * read (queue.c, under the locks), the action decides:
 *	  error		 the commit fails, as in core;
 *	  skip		 the listeners holding the oldest unread batches are moved
 *				 past them, just far enough to make room, and told later;
 *	  terminate	 the same, and their sessions are ended (SIGTERM, with a
 *				 FATAL message of ours, rewritten by an emit_log_hook).
 * A PENDING batch is never skipped: room is made only up to the first one.
 *
 * What a skipped listener missed is counted exactly (entries of COMMITTED
 * batches of its database that name its slot, on channels it listens to,
 * minus those of a half-sent batch it already sent) and kept in its slot
 * (NeGap).  Its drain reports the gap, at the place of the missed
 * notifications and before any later one, as a WARNING NoticeResponse
 * (SQLSTATE 01N01) and, if the session listens on "notify_ext.gap", as a
 * NotificationResponse on that channel with a JSON payload: the drain
 * (deliver.c) finds the gap, ne_gap_send builds and sends the messages.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"

int			ne_queue_full_action = NE_FULL_ERROR;

static emit_log_hook_type prev_emit_log_hook = NULL;

static const struct config_enum_entry ne_full_action_options[] = {
	{"error", NE_FULL_ERROR, false},
	{"skip", NE_FULL_SKIP, false},
	{"terminate", NE_FULL_TERMINATE, false},
	{NULL, 0, false}
};

void
ne_gap_add(NeGap *gap, const char *channel)
{
	gap->count++;
	for (int i = 0; i < gap->nchannels; i++)
	{
		if (strcmp(gap->channels[i].channel, channel) == 0)
		{
			gap->channels[i].count++;
			return;
		}
	}
	if (gap->nchannels < NE_GAP_MAX_CHANNELS)
	{
		strlcpy(gap->channels[gap->nchannels].channel, channel, NAMEDATALEN);
		gap->channels[gap->nchannels].count = 1;
		gap->nchannels++;
		return;
	}
	gap->otherCount++;
}

/* add what src counts to dst (the queue range and the reasons are the caller's) */
void
ne_gap_merge(NeGap *dst, const NeGap *src)
{
	dst->count += src->count;
	dst->otherCount += src->otherCount;
	for (int i = 0; i < src->nchannels; i++)
	{
		const NeGapChannel *sc = &src->channels[i];
		int			j;

		for (j = 0; j < dst->nchannels; j++)
		{
			if (strcmp(dst->channels[j].channel, sc->channel) == 0)
				break;
		}
		if (j < dst->nchannels)
			dst->channels[j].count += sc->count;
		else if (dst->nchannels < NE_GAP_MAX_CHANNELS)
		{
			dst->channels[dst->nchannels] = *sc;
			dst->nchannels++;
		}
		else
			dst->otherCount += sc->count;
	}
}

/*
 * Count, into the slot's gap, what it has not read in [from, to).
 * Caller holds registryLock (shared) and queueLock (exclusive).
 */
static uint64
ne_count_missed(int slotno, uint64 from, uint64 to)
{
	NotifyExtSlot *slot = &ne_shared->slots[slotno];
	Size		hdrSize = ne_batch_header_size();
	Size		bitOffset = MAXALIGN(sizeof(NotifyExtBatchHeader)) +
		sizeof(uint64) * (slotno / 64);
	uint64		myBit = UINT64CONST(1) << (slotno % 64);
	uint64		before = slot->gap.count;
	uint64		pos = from;

	while (pos < to)
	{
		NotifyExtBatchHeader hdr;
		uint64		word;
		uint32		state;
		uint64		epos = pos + hdrSize;
		uint32		first = 0;

		if (!ne_queue_read(pos, &hdr, sizeof(hdr)) ||
			!ne_queue_read(pos + bitOffset, &word, sizeof(word)))
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("notify_ext: %s", ne_spill_last_error())));
		state = ne_queue_batch_state(pos, &hdr);

		if ((word & myBit) != 0 && state == NE_BATCH_COMMITTED &&
			hdr.dboid == slot->dboid)
		{
			if (slot->resumePos == pos)
				first = slot->resumeEntry;
			for (uint32 idx = 0; idx < hdr.nentries; idx++)
			{
				NotifyExtEntryHeader eh;
				char		channel[NAMEDATALEN];

				if (!ne_queue_read(epos, &eh, sizeof(eh)) ||
					!ne_queue_read(epos + sizeof(eh), channel, eh.channelLen))
					ereport(ERROR,
							(errcode_for_file_access(),
							 errmsg("notify_ext: %s", ne_spill_last_error())));
				channel[eh.channelLen] = '\0';
				if (idx >= first && ne_registry_slot_listens(hdr.dboid, channel, slotno))
					ne_gap_add(&slot->gap, channel);
				epos += sizeof(eh) + eh.channelLen + eh.payloadLen;
			}
		}
		pos += hdr.length;
	}
	return slot->gap.count - before;
}

/*
 * The queue (ring and disk) lacks room although the tail is up to date:
 * the tail would have to reach tailTarget.  Under queue_full_action skip
 * or terminate, move the listeners that hold the oldest unread batches past
 * just enough of them, never past a PENDING batch.  Returns false if no
 * room can be made (action error, or a PENDING batch in the way); the
 * caller then fails the commit.  *affected gets the listeners moved, for
 * ne_overflow_after_publish.
 *
 * Caller holds registryLock (shared) and queueLock (exclusive).  ERROR if
 * a spill file cannot be read.
 */
bool
ne_queue_make_room(uint64 tailTarget, bool forceSkip,
				   NeAffected **affected, int *naffected)
{
	uint64		pos;
	NeAffected *aff;
	int			n = 0;

	*affected = NULL;
	*naffected = 0;
	ne_shared->lastFullAction = forceSkip ? NE_FULL_SKIP : ne_queue_full_action;

	if (ne_queue_full_action == NE_FULL_ERROR && !forceSkip)
		return false;

	/* the tail has to reach tailTarget: the batch boundary at or after it */
	ne_spill_invalidate_cache();
	pos = ne_shared->tail;
	while (pos < tailTarget && pos < ne_shared->head)
	{
		NotifyExtBatchHeader hdr;
		uint32		state;

		if (!ne_queue_read(pos, &hdr, sizeof(hdr)))
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("notify_ext: %s", ne_spill_last_error())));
		state = ne_queue_batch_state(pos, &hdr);
		if (state == NE_BATCH_PENDING)
			return false;		/* still being committed: never skipped */
		pos += hdr.length;
	}

	aff = palloc(sizeof(NeAffected) * ne_shared->nslots);
	for (int i = 0; i < ne_shared->nslots; i++)
	{
		NotifyExtSlot *slot = &ne_shared->slots[i];
		uint64		w = pg_atomic_read_u64(&slot->wakeupPos);
		uint64		missed;

		if (slot->pid == 0 || w == NE_INVALID_POS || w >= pos)
			continue;
		if (slot->gap.count == 0)
			slot->gap.fromPos = w;
		missed = ne_count_missed(i, w, pos);
		slot->gap.toPos = pos;
		slot->missed += missed;
		slot->skips++;
		slot->resumePos = NE_INVALID_POS;
		pg_atomic_write_u64(&slot->wakeupPos,
							pos >= ne_shared->head ? NE_INVALID_POS : pos);
		if (forceSkip)
			slot->gap.replaySkip = true;
		if (slot->gap.count > 0)
			pg_atomic_write_u32(&slot->gapPending, 1);
		ne_shared->skipCount++;
		ne_shared->skippedNotifications += missed;
		if (ne_queue_full_action == NE_FULL_TERMINATE && !forceSkip)
		{
			pg_atomic_write_u32(&slot->terminating, 1);
			ne_shared->terminateCount++;
		}
		aff[n].slot = i;
		aff[n].pid = slot->pid;
		aff[n].missed = missed;
		n++;
	}
	*affected = aff;
	*naffected = n;
	return true;
}

/*
 * After the publisher released its locks: log what was done, wake the
 * skipped listeners (an idle one reports its gap at once), or end them.
 */
void
ne_overflow_after_publish(const NeAffected *aff, int naffected)
{
	bool		terminate = (ne_queue_full_action == NE_FULL_TERMINATE);

	for (int i = 0; i < naffected; i++)
	{
		int			slot = aff[i].slot;

		ereport(LOG,
				(errmsg("notify_ext: the NOTIFY queue was full: moved the listener with PID %d past %llu notifications it had not read%s",
						aff[i].pid, (unsigned long long) aff[i].missed,
						terminate ? ", and terminated it" : ""),
				 errdetail("notify_ext.queue_full_action is \"%s\".",
						   terminate ? "terminate" : "skip")));
		if (terminate)
		{
			/* as pg_terminate_backend() does it, without its permission check */
			if (BackendPidGetProc(aff[i].pid) != NULL)
				(void) kill(aff[i].pid, SIGTERM);
		}
		else
			ne_signal_listeners(&slot, 1);
	}
}

/*
 * Give a session ended by queue_full_action = terminate a FATAL message
 * that says why, instead of "terminating connection due to administrator
 * command".  Runs in the terminated backend itself.
 */
static void
ne_emit_log_hook(ErrorData *edata)
{
	int			slotno;

	if (edata->elevel == FATAL && edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN &&
		ne_shared != NULL && ne_slot_active && (slotno = ne_my_slot()) >= 0 &&
		pg_atomic_read_u32(&ne_shared->slots[slotno].terminating) != 0)
	{
		edata->message = MemoryContextStrdup(ErrorContext,
											 "terminating connection because it did not read its notifications and the NOTIFY queue was full");
		edata->detail = MemoryContextStrdup(ErrorContext,
											"notify_ext.queue_full_action is \"terminate\": a session that holds the NOTIFY queue when it fills is ended.");
		edata->hint = MemoryContextStrdup(ErrorContext,
										  "Reconnect and LISTEN again; notifications sent meanwhile were not received.  Read notifications promptly and keep listening sessions out of long transactions.");
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
ne_overflow_init(void)
{
	DefineCustomEnumVariable("notify_ext.queue_full_action",
							 "What a notifying commit does when listeners that have not read fill the queue.",
							 "error: the commit fails (core's behaviour); skip: those listeners are moved past "
							 "the notifications they have not read and told so; terminate: their sessions are ended.",
							 &ne_queue_full_action,
							 NE_FULL_ERROR,
							 ne_full_action_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = ne_emit_log_hook;
}

/*
 * Render a gap: as the notice's detail (notice = true) or as the JSON
 * payload of the notify_ext.gap notification.  Bytes outside printable
 * ASCII in channel names are written as \xNN (notice) or \u00NN (JSON), so
 * the text is the same in every client encoding.  Never fails; truncates
 * at bufsize.  Returns the length.
 */
Size
ne_gap_build(const NeGap *gap, char *buf, Size bufsize, bool notice)
{
	Size		len = 0;

#define NE_APPEND(...) \
	do { \
		int			r_ = snprintf(buf + len, bufsize - len, __VA_ARGS__); \
		if (r_ > 0) \
			len = Min(len + (Size) r_, bufsize - 1); \
	} while (0)

	if (bufsize == 0)
		return 0;
	buf[0] = '\0';
	if (gap->readError)
	{
		/* lost to a spill file that could not be read: how many is unknown */
		if (!notice)
			NE_APPEND("{\"missed\": null, \"channels\": {}, \"other_channels\": null, \"reason\": \"read error\", \"from_position\": %llu, \"to_position\": %llu}",
					  (unsigned long long) gap->fromPos,
					  (unsigned long long) gap->toPos);
		else
			NE_APPEND("Queue positions %llu to %llu were skipped; how many notifications they held for this session is unknown.",
					  (unsigned long long) gap->fromPos,
					  (unsigned long long) gap->toPos);
		return len;
	}
	if (!notice)
		NE_APPEND("{\"missed\": %llu, \"channels\": {", (unsigned long long) gap->count);
	else
		NE_APPEND("Missed: ");
	for (int i = 0; i < gap->nchannels; i++)
	{
		const unsigned char *c = (const unsigned char *) gap->channels[i].channel;

		NE_APPEND("%s\"", i > 0 ? ", " : "");
		for (; *c; c++)
		{
			if (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\')
				NE_APPEND("%c", *c);
			else if (notice)
				NE_APPEND("\\x%02x", *c);
			else
				NE_APPEND("\\u%04x", *c);
		}
		NE_APPEND("\"%s%llu", notice ? ": " : ": ",
				  (unsigned long long) gap->channels[i].count);
	}
	if (!notice)
		NE_APPEND("}, \"other_channels\": %llu, \"reason\": \"%s\", \"from_position\": %llu, \"to_position\": %llu}",
				  (unsigned long long) gap->otherCount,
				  gap->outOfMemory ? "out of memory" :
				  gap->notQueued ? "not queued on standby" : "queue full",
				  (unsigned long long) gap->fromPos,
				  (unsigned long long) gap->toPos);
	else if (gap->otherCount > 0)
		NE_APPEND(", and %llu on other channels.", (unsigned long long) gap->otherCount);
	else
		NE_APPEND(".");
#undef NE_APPEND
	return len;
}

/*
 * Tell the client what it missed when it was skipped: a WARNING notice
 * (if client_min_messages lets warnings through) and, if the session
 * listens on notify_ext.gap, a notification there with a JSON payload.
 * Built in buf (bufsize bytes, allocated in advance by deliver.c), sent
 * through deliver.c's wrappers of the client connection; never throws.
 */
void
ne_gap_send(const NeGap *gap, char *buf, Size bufsize)
{
	NeLocalChannel *lc;

	if (client_min_messages <= WARNING)
	{
		Size		len = 0;
		int			r;

#define NE_FIELD(code, ...) \
	do { \
		if (len + 2 < bufsize) \
		{ \
			buf[len++] = (code); \
			r = snprintf(buf + len, bufsize - len - 1, __VA_ARGS__); \
			len = Min(len + (Size) Max(r, 0), bufsize - 2); \
			buf[len++] = '\0'; \
		} \
	} while (0)

		NE_FIELD('S', "WARNING");
		NE_FIELD('V', "WARNING");
		NE_FIELD('C', "%s", NE_GAP_SQLSTATE);
		if (gap->readError)
			NE_FIELD('M', "notify_ext: notifications for this session were lost: the part of the NOTIFY queue spilled to disk could not be read (%s)",
					 gap->readErrorMsg);
		else if (gap->outOfMemory)
			NE_FIELD('M', "notify_ext: %llu notifications were not delivered to this session because the server was out of memory for their payloads",
					 (unsigned long long) gap->count);
		else if (gap->notQueued)
			NE_FIELD('M', "notify_ext: %llu notifications committed on the primary were not delivered to this session because this standby could not queue them",
					 (unsigned long long) gap->count);
		else
			NE_FIELD('M', "notify_ext: %llu notifications were not delivered to this session because the NOTIFY queue was full and it had not read them",
					 (unsigned long long) gap->count);
		if (len + 2 < bufsize)
		{
			buf[len++] = 'D';
			len += ne_gap_build(gap, buf + len,
								bufsize - len - 1, true);
			buf[len++] = '\0';
		}
		if (gap->readError || gap->outOfMemory || gap->notQueued)
			NE_FIELD('H', "Re-read what the missed notifications were about; the server log has the error.  LISTEN on \"%s\" to get this as a notification.",
					 NE_GAP_CHANNEL);
		else if (gap->replaySkip)
			NE_FIELD('H', "On a standby, WAL replay never waits for a listener: one that does not read is moved past what it has not read, whatever notify_ext.queue_full_action says. Re-read what the missed notifications were about; LISTEN on \"%s\" to get this as a notification.",
					 NE_GAP_CHANNEL);
		else
			NE_FIELD('H', "notify_ext.queue_full_action is \"skip\". Re-read what the missed notifications were about; LISTEN on \"%s\" to get this as a notification.",
					 NE_GAP_CHANNEL);
#undef NE_FIELD
		if (len < bufsize)
		{
			buf[len++] = '\0';
			ne_put_notice(buf, len);
		}
	}

	lc = ne_local_lookup(NE_GAP_CHANNEL);
	if (lc != NULL && lc->committed)
	{
		Size		len = 0;
		uint32		npid = pg_hton32(0);	/* from notify_ext, not a backend */

		memcpy(buf, &npid, 4);
		len = 4;
		memcpy(buf + len, NE_GAP_CHANNEL, sizeof(NE_GAP_CHANNEL));
		len += sizeof(NE_GAP_CHANNEL);
		len += ne_gap_build(gap, buf + len, bufsize - len - 1, false);
		buf[len++] = '\0';
		ne_send_one(buf, (uint32) len);
	}
}
