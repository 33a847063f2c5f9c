/*-------------------------------------------------------------------------
 *
 * spill.c
 *	  The disk tier of the queue: spill files under pg_notify_ext/.
 *
 * The queue is one stream of bytes addressed by 64-bit positions that only
 * grow (notify_ext.h).  The ring holds the newest part of it; positions
 * below ne_shared->spillPos live in spill files instead: segment files of
 * NE_SEG_SIZE bytes named by segment number (position / NE_SEG_SIZE, 16 hex
 * digits), the byte of position p at offset p % NE_SEG_SIZE.  A position
 * is written to disk once and never rewritten, except the state word of a
 * batch that was spilled while PENDING (below), so a reader may cache what
 * it read until it takes queueLock again.
 *
 * Who writes, always before the point of no return (an error fails the
 * notifying commit cleanly and leaves everything queued intact):
 *	  - a publisher that needs room copies the oldest needed batches of the
 *		ring to disk (ne_spill_from_ring, under queueLock) and only then moves
 *		spillPos past them;
 *	  - a batch larger than the ring is written straight to disk by its
 *		publisher (queue.c), its header under queueLock, its entries after.
 * Files are created when first written, unlinked once the tail has passed
 * them (ne_spill_unlink_below), removed all together when shared memory is
 * initialised (server start, crash restart: notifications are not durable,
 * as in core), and never fsynced.
 *
 * A batch still PENDING when it goes to disk: its publisher must no longer
 * write its state word into the ring (the bytes get reused), so the state
 * moves to the publisher's slot, the "record" (recPos, recState, under the
 * slot's spinlock): the spiller sets it, ne_queue_set_state writes the end
 * state there, and readers that find PENDING in a batch consult it.  A
 * record is settled (its state written into the batch's header, on disk or
 * in the ring, and cleared) under queueLock before it is replaced by the
 * publisher's next one: ne_record_settle.
 *
 * Where a new batch goes (ne_queue_plan) and the spilling itself
 * (ne_queue_spill) live here too; queue.c calls them under queueLock.
 *
 * Reading (the drain, the full-queue scan, the views) never throws here:
 * ne_spill_read returns false and keeps the message for the caller to log.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#define NE_SPILL_DIR		"pg_notify_ext"
#define NE_FILE_CACHE		8	/* open spill files kept per backend */
#define NE_READ_BLOCK		(64 * 1024) /* divides NE_SEG_SIZE */

int			ne_queue_disk_limit_mb = 8192;

typedef struct NeSegFile
{
	uint64		segno;
	File		file;
} NeSegFile;

static NeSegFile segCache[NE_FILE_CACHE];
static int	nSegCache = 0;

/* one block of spilled data, as read last */
static char *readBuf = NULL;
static uint64 readStart = NE_INVALID_POS;
static Size readLen = 0;

static char lastError[256];

/* the state word of the batch at ring position pos */
static inline pg_atomic_uint32 *
ne_ring_state(uint64 pos)
{
	return (pg_atomic_uint32 *) (ne_ring + pos % ne_shared->ringSize);
}

uint64
ne_disk_limit_bytes(void)
{
	return (uint64) ne_queue_disk_limit_mb * 1024 * 1024;
}

static void
ne_seg_path(char *buf, uint64 segno)
{
	snprintf(buf, MAXPGPATH, NE_SPILL_DIR "/%016llX",
			 (unsigned long long) segno);
}

/*
 * Remove every spill file (postmaster, when shared memory is initialised:
 * server start and crash restart), and make sure the directory exists.
 */
void
ne_spill_reset_dir(void)
{
	struct stat st;

	if (stat(NE_SPILL_DIR, &st) == 0)
	{
		if (!rmtree(NE_SPILL_DIR, false))
			ereport(WARNING,
					(errmsg("notify_ext: could not remove old files in \"%s\"",
							NE_SPILL_DIR)));
	}
	else if (MakePGDirectory(NE_SPILL_DIR) < 0 && errno != EEXIST)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("notify_ext: could not create directory \"%s\": %m",
						NE_SPILL_DIR)));
}

/*
 * What a listener needs to read spilled data without allocating later.
 */
void
ne_spill_prepare(void)
{
	if (readBuf == NULL)
		readBuf = MemoryContextAlloc(TopMemoryContext, NE_READ_BLOCK);
}

void
ne_spill_invalidate_cache(void)
{
	readStart = NE_INVALID_POS;
	readLen = 0;
}

const char *
ne_spill_last_error(void)
{
	return lastError;
}

/*
 * The open spill file of segment segno, or -1 (errno set).  Files of
 * segments the tail has passed are closed on the way (they are unlinked or
 * about to be; an open descriptor would keep their space).
 */
static File
ne_seg_open(uint64 segno, bool create)
{
	char		path[MAXPGPATH];
	uint64		tailSeg = ne_shared->tail / NE_SEG_SIZE;	/* a hint */
	File		f;
	int			i;

	for (i = 0; i < nSegCache;)
	{
		if (segCache[i].segno < tailSeg && segCache[i].segno != segno)
		{
			FileClose(segCache[i].file);
			segCache[i] = segCache[--nSegCache];
			continue;
		}
		if (segCache[i].segno == segno)
			return segCache[i].file;
		i++;
	}
	if (nSegCache == NE_FILE_CACHE)
	{
		FileClose(segCache[0].file);
		memmove(&segCache[0], &segCache[1], sizeof(NeSegFile) * (NE_FILE_CACHE - 1));
		nSegCache--;
	}
	ne_seg_path(path, segno);
	f = PathNameOpenFile(path, O_RDWR | PG_BINARY | (create ? O_CREAT : 0));
	if (f < 0)
		return f;
	segCache[nSegCache].segno = segno;
	segCache[nSegCache].file = f;
	nSegCache++;
	return f;
}

/* read [pos, pos + len) of one segment straight from its file */
static bool
ne_seg_read(uint64 pos, char *dst, Size len)
{
	uint64		segno = pos / NE_SEG_SIZE;
	File		f = ne_seg_open(segno, false);
	char		path[MAXPGPATH];
	int			r;

	ne_seg_path(path, segno);
	if (f < 0)
	{
		snprintf(lastError, sizeof(lastError),
				 "could not open file \"%s\": %s", path, strerror(errno));
		return false;
	}
	errno = 0;
	r = FileRead(f, dst, (int) len, (off_t) (pos % NE_SEG_SIZE), PG_WAIT_EXTENSION);
	if (r != (int) len)
	{
		if (r < 0)
			snprintf(lastError, sizeof(lastError),
					 "could not read file \"%s\": %s", path, strerror(errno));
		else
			snprintf(lastError, sizeof(lastError),
					 "could not read file \"%s\": read only %d of %zu bytes at offset %llu",
					 path, r, len, (unsigned long long) (pos % NE_SEG_SIZE));
		return false;
	}
	return true;
}

/*
 * Copy len bytes of the stream at pos from the spill files; everything up
 * to validEnd (spillPos when the caller looked) is on disk.  Reads whole
 * blocks and keeps the last one.  Never throws: false on an error, whose
 * message ne_spill_last_error() gives.
 */
bool
ne_spill_read(uint64 pos, void *dst, Size len, uint64 validEnd)
{
	char	   *out = dst;

	Assert(pos + len <= validEnd);
	while (len > 0)
	{
		uint64		blk = pos - pos % NE_READ_BLOCK;
		Size		n;

		if (readBuf == NULL)
		{
			/* no cache (not a listener): straight from the file */
			n = Min(len, (Size) (NE_SEG_SIZE - pos % NE_SEG_SIZE));
			if (!ne_seg_read(pos, out, n))
				return false;
		}
		else
		{
			if (readStart != blk || pos + Min(len, (Size) (blk + NE_READ_BLOCK - pos)) > blk + readLen)
			{
				Size		want = (Size) Min((uint64) NE_READ_BLOCK, validEnd - blk);

				readStart = NE_INVALID_POS;
				if (!ne_seg_read(blk, readBuf, want))
					return false;
				readStart = blk;
				readLen = want;
			}
			n = Min(len, (Size) (blk + readLen - pos));
			memcpy(out, readBuf + (pos - blk), n);
		}
		out += n;
		pos += n;
		len -= n;
	}
	return true;
}

/*
 * Write len bytes at stream position pos into the spill files, creating
 * them as needed.  ERROR on failure (a full disk: SQLSTATE 53100): the
 * caller has not yet made anything depend on these bytes.
 */
void
ne_spill_write(uint64 pos, const void *src, Size len)
{
	const char *in = src;

	while (len > 0)
	{
		uint64		segno = pos / NE_SEG_SIZE;
		Size		n = Min(len, (Size) (NE_SEG_SIZE - pos % NE_SEG_SIZE));
		File		f = ne_seg_open(segno, true);
		char		path[MAXPGPATH];
		int			r;

		ne_seg_path(path, segno);
		if (f < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create notify_ext spill file \"%s\": %m", path),
					 errdetail("Notifications that do not fit in notify_ext.queue_size are kept in files; this transaction's were not queued.")));
		errno = 0;
		r = FileWrite(f, (char *) in, (int) n, (off_t) (pos % NE_SEG_SIZE),
					  PG_WAIT_EXTENSION);
		if (r != (int) n)
		{
			/* a short write without errno is a full disk */
			if (r >= 0 || errno == 0)
				errno = ENOSPC;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write notify_ext spill file \"%s\": %m", path),
					 errdetail("Notifications that do not fit in notify_ext.queue_size are kept in files; this transaction's were not queued.")));
		}
		in += n;
		pos += n;
		len -= n;
	}
}

/*
 * Note that the segments of [from, to) may now have files.  Caller holds
 * queueLock exclusively.
 */
void
ne_spill_note_segments(uint64 from, uint64 to)
{
	uint64		first = from / NE_SEG_SIZE;
	uint64		end = (to + NE_SEG_SIZE - 1) / NE_SEG_SIZE;

	if (ne_shared->diskSegLow >= ne_shared->diskSegEnd)
		ne_shared->diskSegLow = first;	/* no file left: start afresh */
	else
		ne_shared->diskSegLow = Min(ne_shared->diskSegLow, first);
	ne_shared->diskSegEnd = Max(ne_shared->diskSegEnd, end);
}

/*
 * Copy the ring's bytes [from, to) to disk (whole batches; the caller
 * handled the PENDING ones).  Caller holds queueLock exclusively and moves
 * spillPos afterwards.  ERROR on failure.
 */
void
ne_spill_from_ring(uint64 from, uint64 to)
{
	uint64		ringSize = ne_shared->ringSize;
	uint64		p = from;

	ne_spill_note_segments(from, to);
	while (p < to)
	{
		Size		off = (Size) (p % ringSize);
		Size		n = (Size) Min(to - p, ringSize - off);

		ne_spill_write(p, ne_ring + off, n);
		p += n;
	}
	ne_shared->spilledBytes += to - from;
}

/*
 * Unlink the spill files that lie wholly below the tail.  Caller holds
 * queueLock exclusively.  Never throws (a file that cannot be removed is
 * logged and left).
 */
void
ne_spill_unlink_below(uint64 tail)
{
	uint64		tailSeg = tail / NE_SEG_SIZE;
	uint64		end = Min(tailSeg, ne_shared->diskSegEnd);

	for (uint64 s = ne_shared->diskSegLow; s < end; s++)
	{
		char		path[MAXPGPATH];

		for (int i = 0; i < nSegCache; i++)
		{
			if (segCache[i].segno == s)
			{
				FileClose(segCache[i].file);
				segCache[i] = segCache[--nSegCache];
				break;
			}
		}
		ne_seg_path(path, s);
		if (unlink(path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("notify_ext: could not remove spill file \"%s\": %m", path)));
	}
	if (end > ne_shared->diskSegLow)
		ne_shared->diskSegLow = end;
}

/*
 * Settle slot slotno's record: write the end state of its batch into the
 * batch's header (on disk, or in the ring if the spill that made the
 * record failed), then clear it.  Nothing to write if the tail has passed
 * the batch.  A record whose batch has not ended is left alone (returns
 * false).  Caller holds queueLock exclusively; ERROR if the disk write
 * fails (the record stays).
 */
bool
ne_record_settle(int slotno)
{
	NotifyExtSlot *slot = &ne_shared->slots[slotno];
	uint64		pos;
	uint32		state;

	SpinLockAcquire(&slot->recMutex);
	pos = slot->recPos;
	state = slot->recState;
	SpinLockRelease(&slot->recMutex);

	if (pos == NE_INVALID_POS)
		return true;
	if (state == NE_BATCH_PENDING)
		return false;
	if (pos >= ne_shared->tail)
	{
		if (pos < ne_shared->spillPos)
			ne_spill_write(pos, &state, sizeof(state));
		else
			pg_atomic_write_u32((pg_atomic_uint32 *) (ne_ring + pos % ne_shared->ringSize),
								state);
	}
	SpinLockAcquire(&slot->recMutex);
	if (slot->recPos == pos)
		slot->recPos = NE_INVALID_POS;
	SpinLockRelease(&slot->recMutex);
	return true;
}

/*
 * Batches in the ring [max(tail, spillPos), to) go to disk; to is a batch
 * boundary.  The state of those still PENDING moves to their publishers'
 * slots first (spill.c), then the bytes are written, and only then does
 * spillPos move: an ERROR (full disk) leaves the queue as it was.  Caller
 * holds queueLock exclusively.
 */
void
ne_queue_spill(uint64 to)
{
	uint64		from = Max(ne_shared->tail, ne_shared->spillPos);
	uint64		pos = from;

	if (to <= from)
		return;
	while (pos < to)
	{
		NotifyExtBatchHeader hdr;

		ne_ring_read(pos, &hdr, sizeof(hdr));
		if (pg_atomic_read_u32(ne_ring_state(pos)) == NE_BATCH_PENDING &&
			hdr.srcSlot < (uint32) ne_shared->nslots)
		{
			NotifyExtSlot *owner = &ne_shared->slots[hdr.srcSlot];

			/* its previous record (an ended batch) is written out first */
			if (owner->recPos != pos && !ne_record_settle(hdr.srcSlot))
				elog(ERROR, "notify_ext: slot %u has two batches in flight",
					 hdr.srcSlot);
			SpinLockAcquire(&owner->recMutex);
			if (pg_atomic_read_u32(ne_ring_state(pos)) == NE_BATCH_PENDING &&
				owner->recPos == NE_INVALID_POS)
			{
				owner->recPos = pos;
				owner->recState = NE_BATCH_PENDING;
			}
			SpinLockRelease(&owner->recMutex);
			elog(DEBUG2, "notify_ext: spilling the PENDING batch at %llu of slot %u",
				 (unsigned long long) pos, hdr.srcSlot);
		}
		pos += hdr.length;
	}
	Assert(pos == to);
	ne_spill_from_ring(from, to);
	ne_shared->spillPos = to;
}

/* the first batch boundary at or after target, walking the ring from a boundary */
static uint64
ne_ring_boundary(uint64 from, uint64 target)
{
	uint64		pos = from;

	while (pos < target)
	{
		NotifyExtBatchHeader hdr;

		ne_ring_read(pos, &hdr, sizeof(hdr));
		pos += hdr.length;
	}
	return pos;
}


/*
 * Decide where a new batch of `total` bytes goes.  In the ring if it fits
 * there after spilling the oldest batches, as long as what is then on disk,
 * [tail, spillTo), stays within notify_ext.queue_disk_limit; on disk if it
 * is larger than the ring.  Spills come in chunks of an eighth of the ring
 * when the disk limit allows, so that a parked listener costs the
 * publishers one large write now and then, not a small one each.  Caller
 * holds queueLock exclusively.
 */
void
ne_queue_plan(uint64 total, NeRoomPlan *plan)
{
	uint64		head = ne_shared->head;
	uint64		tail = ne_shared->tail;
	uint64		ringSize = ne_shared->ringSize;
	uint64		ringLow = Max(tail, ne_shared->spillPos);
	uint64		limit = ne_disk_limit_bytes();

	memset(plan, 0, sizeof(*plan));
	if (total <= ringSize)
	{
		uint64		target;
		uint64		b;

		if (head + total - ringLow <= ringSize)
		{
			plan->fits = true;
			return;
		}
		target = head + total - ringSize;
		b = ne_ring_boundary(ringLow, target);
		if (b - tail <= limit)
		{
			uint64		want = Min(head, Max(target, ringLow + ringSize / 8));
			uint64		b2 = ne_ring_boundary(b, want);

			plan->spillTo = (b2 - tail <= limit) ? b2 : b;
			plan->fits = true;
		}
		else
			plan->tailTarget = b - limit;
	}
	else
	{
		plan->giant = true;
		if (head + total - tail <= limit)
			plan->fits = true;
		else
			plan->tailTarget = head + total - limit;
	}
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
