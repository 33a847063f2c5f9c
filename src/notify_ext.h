/*-------------------------------------------------------------------------
 *
 * notify_ext.h
 *	  Shared declarations of notify_ext: LISTEN/NOTIFY as a preloaded module.
 *
 * THE MODEL
 *
 * 1. A transaction's ext_notify() calls are buffered in backend-local memory
 *	  (xact.c), deduplicated on (channel, payload), and trimmed when a
 *	  subtransaction aborts.  LISTEN/UNLISTEN requests are buffered the same
 *	  way.  Nothing reaches shared memory before commit.
 *
 * 2. At PRE_COMMIT the transaction's LISTENs are registered (registry.c) and
 *	  its notifications are published (queue.c) as ONE "batch" in a ring
 *	  buffer in shared memory.  The batch is written in state PENDING and
 *	  carries a bitmap of the listener slots that listen, in this database, on
 *	  at least one of its channels.  A batch nobody listens to is not written
 *	  at all.  A full queue fails the commit here, with a clean ERROR.
 *
 * 3. At COMMIT (after the transaction is visible to others) the batch is
 *	  flipped to COMMITTED with one atomic store, the transaction's UNLISTENs
 *	  are applied, and only the listeners named in the bitmap are woken
 *	  (deliver.c) with PROCSIG_CATCHUP_INTERRUPT.  At ABORT it is flipped to
 *	  ABORTED and readers skip it.  Neither step can fail.
 *
 * 4. ORDERING lives in one place, ne_queue_publish(): batches are appended in
 *	  the order their transactions pass PRE_COMMIT, and a reader never reads
 *	  past a PENDING batch it is interested in, so each listener receives the
 *	  batches it cares about in queue order.  A transaction that started after
 *	  another one committed (or saw its effects) is always behind it in the
 *	  queue.  No lock is held across the commit record.
 *
 * 5. Each listener slot has a wakeupPos: the start of the oldest batch it is
 *	  named in and has not consumed (or NE_INVALID_POS), and each backend's
 *	  slot has a pendingPos: its own batch while still PENDING.  The queue
 *	  tail is the minimum of all of those (or the head): computed from the
 *	  slots alone, without reading the ring.  Batches nobody is waiting for
 *	  are reclaimed at once, so listeners on other channels or in other
 *	  databases never hold the queue back.
 *
 * 6. Delivery (deliver.c) happens outside any transaction work: right before
 *	  ReadyForQuery('I') (a wrapper around PqCommMethods->putmessage, which
 *	  gives core's wire order CommandComplete, NotificationResponse,
 *	  ReadyForQuery), and, for an idle client, from the empty transaction the
 *	  catch-up interrupt runs.  The drain copies entries under the lock into a
 *	  buffer allocated when the session started listening, releases the
 *	  lock, then sends; nothing in it can throw.
 *
 * 7. THE DISK TIER (spill.c).  The queue is one stream of positions; the
 *	  ring holds its newest part, and positions below spillPos live in spill
 *	  files (pg_notify_ext/, notify_ext.queue_disk_limit).  A publisher that
 *	  finds the ring holding what listeners still need first copies the
 *	  oldest of those batches to disk (whole batches, before anything
 *	  depends on it: a full disk fails its commit and changes nothing), then
 *	  writes its own batch into the ring; a batch larger than the ring is
 *	  written straight to disk.  A batch still PENDING when it goes to disk
 *	  keeps its state in its publisher's slot (the "record") until settled.
 *	  Readers never care where a position lives (ne_queue_read).  Files
 *	  behind the tail are unlinked; all of them go when shared memory is
 *	  initialised.  Notifiers never wait for a reader, on disk or not.
 *
 * 8. A FULL QUEUE (overflow.c).  When a publisher finds no room in the ring
 *	  and the disk limit although the tail is up to date,
 *	  notify_ext.queue_full_action decides: error (fail
 *	  the commit, as core), skip (move the listeners whose wakeupPos lies in
 *	  the oldest batches to the first batch boundary that makes room, never
 *	  past a PENDING batch, counting exactly what each missed into its
 *	  slot's NeGap), or terminate (the same, then SIGTERM those sessions).
 *	  A skipped listener's drain reports the gap before anything it reads
 *	  after it: a WARNING notice (01N01) and, if it listens on
 *	  "notify_ext.gap", a notification there with a JSON payload.
 *
 * 9. STANDBYS (walrec.c, replay.c, replay_gap.c).  With
 *	  notify_ext.wal_log on, a notifying transaction takes an XID and
 *	  also writes its notifications as WAL records of our resource
 *	  manager (under queueLock where the primary has listeners, so WAL
 *	  order is ring order).  A hot standby's startup
 *	  process replays each into the standby's own queue as a PENDING batch
 *	  carrying the XID (srcSlot NE_NO_SLOT): no publisher settles it;
 *	  readers ask the clog (PENDING while the XID is in progress) until
 *	  the startup process, replaying the commit or abort record (or a
 *	  running-transactions record past it), writes the outcome into the
 *	  batch's header (ring or spill file) and wakes its listeners.
 *	  Replay never waits: a full standby queue always skips its laggards.
 *	  A batch it cannot queue even so is dropped there; if its transaction
 *	  commits, the listeners it would have reached get a gap (reason "not
 *	  queued on standby", counted when it was dropped).
 *
 * SHARED MEMORY LAYOUT (allocated once, sized at postmaster start)
 *
 *	  "notify_ext state"   NotifyExtShared, then MaxBackends NotifyExtSlot
 *						   (slot i belongs to the backend with BackendId i+1)
 *	  "notify_ext ring"	   notify_ext.queue_size bytes of batches
 *	  "notify_ext channels" hash (dboid, channel) -> slot bitmap,
 *						   notify_ext.max_channels entries, fixed size
 *	  "notify_ext patterns" notify_ext.max_patterns NePatternEntry
 *						   (dboid, LIKE pattern) -> slot bitmap
 *
 *	  Ring positions are 64-bit byte offsets that only grow; the byte of
 *	  position p is ring[p % ringSize] if p >= spillPos, else byte
 *	  p % NE_SEG_SIZE of the spill file pg_notify_ext/<p / NE_SEG_SIZE in
 *	  16 hex digits>.  A batch lies wholly in one or the other.  Batches
 *	  start MAXALIGNed, so the atomic state word at the start of a batch is
 *	  never split by the wrap.
 *
 * LOCKING RULES
 *
 *	  registryLock: the channel hash, the pattern table and the listener
 *					bits in them (the
 *					per-channel sent counters are atomics).
 *	  queueLock:	head, tail, spillPos, the spill files' contents and
 *					their creation and removal (but see below), ring
 *					contents of non-PENDING batches' headers, the counters
 *					in NotifyExtShared, and every slot's
 *					pid/dboid/wakeupPos/resume/skips/missed/gap and recPos.
 *					A skip (publisher) and a drain (listener) both change a
 *					slot's wakeupPos and gap only under it exclusively.
 *	  recMutex:		(spinlock, one per slot, innermost) recState, and the
 *					choice between writing a batch's end state into the
 *					ring or into the record (ne_queue_set_state against the
 *					spiller taking the record).  Nothing else is done under it.
 *
 *	  Order: registryLock before queueLock before a slot's recMutex, never
 *	  the other way round.  A reader resolving a replayed batch's state
 *	  takes ProcArrayLock and the clog's locks (shared) under queueLock;
 *	  nothing of ours is ever taken under those.  The
 *	  publisher holds registryLock (shared) from the bitmap lookup until its
 *	  batch is in the ring, so a LISTEN registered concurrently is either in
 *	  the bitmap or starts after the batch.
 *
 *	  Batch state words are atomics, written without lock by the publishing
 *	  backend (PENDING -> COMMITTED | ABORTED) and read under queueLock;
 *	  for a batch on disk whose record names it, the record holds the state.
 *	  The entries of a batch larger than the ring are written to its spill
 *	  files after the locks are released: nobody reads them before the
 *	  batch ends (it is PENDING), and they lie below spillPos, where nobody
 *	  else writes.
 *	  A slot's pendingPos is set under queueLock when its backend publishes
 *	  and cleared without lock after the state word is written.
 *	  A slot's wakeupPos is written under queueLock exclusive; it may be
 *	  read without lock as a hint (a stale read is corrected by the wake-up
 *	  signal that follows every change made by another backend).
 *	  A slot's wake word (below) is changed only with atomic operations.
 *	  A slot's sending flag is written by its own backend only.
 *
 * THE WAKE-UP PROTOCOL (checked exhaustively by test/model/)
 *
 *	  A slot's wake word packs its owner's pid, a generation and the
 *	  "signaled" flag into ONE 64-bit atomic: pid << 32 | gen << 1 | flag.
 *	  - Acquiring the slot (first LISTEN) writes (MyProcPid, gen + 1, 0);
 *		releasing it writes (0, gen, 0).  Both under queueLock.
 *	  - A waker reads the word and, if it names a pid and the flag is clear,
 *		sets the flag with compare-and-swap on exactly that word, and only
 *		then signals the pid it read.  A failed CAS (owner changed, or
 *		someone else set the flag) re-reads and decides again.
 *	  - The listener clears the flag (atomic AND) before it reads its
 *		wakeupPos, and drains whatever that shows.
 *	  Invariants: (I1) the flag is set only in a word naming a live
 *	  incarnation, and a signal to that same pid follows the CAS; (I2) a new
 *	  owner starts with the flag clear, so a flag set for a previous owner
 *	  is never inherited (the D2 lost wake-up: a flag set on behalf of a
 *	  dead pid silenced every later waker); (I3) every batch naming a slot
 *	  is published before its waker reads the word, and the listener clears
 *	  the flag before reading wakeupPos, so either the listener's drain sees
 *	  the batch or the waker finds the flag clear and signals.
 *
 * WHERE A SESSION SENDS (never while holding a transaction's XID or locks)
 *
 *	  Before ReadyForQuery('I') (after the transaction has ended), and in
 *	  the empty transaction an idle backend runs for a catch-up interrupt
 *	  while it waits for a client message (pq_is_reading_msg(): no XID, no
 *	  snapshot, no lock but its own virtual-xid lock).  Never at the
 *	  PRE_COMMIT of a transaction that ran client commands.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_EXT_H
#define NOTIFY_EXT_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

/*
 * Core's limits: channel < NAMEDATALEN bytes, payload < 8000 bytes.  The
 * payload limit is notify_ext.max_payload_size (sqlapi.c), 8000 by default.
 */
#define NE_CORE_PAYLOAD_LIMIT	8000
#define NE_MAX_PAYLOAD_LIMIT	(256 * 1024 * 1024)

#define NE_INVALID_POS			PG_UINT64_MAX

/* batch states */
#define NE_BATCH_PENDING		1
#define NE_BATCH_COMMITTED		2
#define NE_BATCH_ABORTED		3

/* what a listener missed when it was skipped (overflow.c) */
#define NE_GAP_MAX_CHANNELS		8

typedef struct NeGapChannel
{
	char		channel[NAMEDATALEN];
	uint64		count;
} NeGapChannel;

typedef struct NeGap
{
	uint64		count;			/* notifications missed */
	uint64		otherCount;		/* of those, on channels beyond channels[] */
	uint64		fromPos;		/* the queue range skipped */
	uint64		toPos;
	int			nchannels;
	NeGapChannel channels[NE_GAP_MAX_CHANNELS];
	bool		readError;		/* lost to a spill file that could not be
								 * read (count unknown), not to a skip */
	bool		outOfMemory;	/* some were lost for want of memory to
								 * hold their payloads (counted) */
	bool		replaySkip;		/* skipped by WAL replay on a standby,
								 * which never waits for a listener */
	bool		notQueued;		/* a replayed batch of a transaction that
								 * committed could not be queued on this
								 * standby (counted; replay_gap.c) */
	char		readErrorMsg[128];
} NeGap;

#define NE_NO_SLOT				PG_UINT32_MAX

/* notify_ext.queue_full_action */
#define NE_FULL_ERROR			0
#define NE_FULL_SKIP			1
#define NE_FULL_TERMINATE		2

/* the reserved channel of the gap signal, and the notice's SQLSTATE */
#define NE_GAP_CHANNEL			"notify_ext.gap"
#define NE_GAP_SQLSTATE			"01N01"

/* per-backend listener slot */
typedef struct NotifyExtSlot
{
	int			pid;			/* 0 if the backend is not listening */
	Oid			dboid;
	pg_atomic_uint64 wakeupPos; /* oldest batch naming us, or INVALID */
	pg_atomic_uint64 wake;		/* pid << 32 | gen << 1 | signaled */
	pg_atomic_uint64 pendingPos;	/* this backend's PENDING batch, or INVALID */
	pg_atomic_uint32 sending;	/* 1 while writing notifications to the
								 * client (may block on a client that does
								 * not read) */
	pg_atomic_uint64 delivered; /* notifications sent to the client */
	pg_atomic_uint32 gapPending;	/* a gap signal waits to be sent */
	pg_atomic_uint32 terminating;	/* queue_full_action = terminate ended it */
	/* the rest under queueLock */
	TimestampTz listenSince;	/* when this incarnation took the slot */
	uint64		resumePos;		/* batch the drain is in the middle of ... */
	uint32		resumeEntry;	/* ... and the entries of it already sent */
	uint32		skips;			/* times moved past unread notifications */
	uint64		missed;			/* notifications skipped, in all */
	NeGap		gap;			/* skipped, not yet reported to the client */
	/* this backend's batch that went to disk while PENDING (spill.c) */
	slock_t		recMutex;
	uint64		recPos;			/* that batch, or NE_INVALID_POS */
	uint32		recState;		/* its state: PENDING until it ends */
} NotifyExtSlot;

#define NE_WAKE_PID(w)		((int) ((w) >> 32))
#define NE_WAKE_GEN(w)		(((w) >> 1) & UINT64CONST(0x7FFFFFFF))
#define NE_WAKE_SIGNALED	UINT64CONST(1)
#define NE_WAKE_MAKE(pid, gen) \
	(((uint64) (uint32) (pid) << 32) | (((uint64) (gen) & UINT64CONST(0x7FFFFFFF)) << 1))

typedef struct NotifyExtShared
{
	LWLock	   *registryLock;
	LWLock	   *queueLock;
	uint64		head;			/* next position to write */
	uint64		tail;			/* oldest position still needed */
	uint64		ringSize;		/* bytes, multiple of MAXIMUM_ALIGNOF */
	int			nslots;			/* MaxBackends */
	int			bitmapWords;	/* uint64 words in a slot bitmap */
	TimestampTz lastFullWarn;	/* last "queue is x% full" warning */
	/* counters, for monitoring and benchmarks (under queueLock) */
	uint64		batchesPublished;
	uint64		notificationsPublished;
	pg_atomic_uint64 notificationsCommitted;	/* incl. those nobody read */
	uint64		queueFullCount; /* commits that found the ring full */
	uint64		skipCount;		/* listeners moved past unread ones */
	uint64		terminateCount; /* listeners terminated for it */
	uint64		skippedNotifications;	/* notifications they missed */
	int			lastFullAction; /* NE_FULL_* taken last time, or -1 */
	/* the disk tier (spill.c), under queueLock */
	uint64		spillPos;		/* positions below this are in spill files */
	uint64		diskSegLow;		/* spill files that may exist: segments */
	uint64		diskSegEnd;		/* [diskSegLow, diskSegEnd) */
	uint64		spilledBytes;	/* written to spill files since start */
	uint64		spillReadErrors;	/* listeners that lost data to one */
	int			npatterns;		/* pattern table entries in use (registryLock) */
	bool		walSeen;		/* a standby replayed a batch (replay.c) */
	NotifyExtSlot slots[FLEXIBLE_ARRAY_MEMBER];
} NotifyExtShared;

/* fixed part of a batch in the ring, followed by the bitmap and entries */
typedef struct NotifyExtBatchHeader
{
	pg_atomic_uint32 state;
	Oid			dboid;
	uint32		length;			/* whole batch, MAXALIGNed */
	int32		srcPid;
	uint32		nentries;
	uint32		srcSlot;		/* publisher's slot (its PENDING record), or
								 * NE_NO_SLOT: replayed from the WAL */
	TransactionId xid;			/* replayed: its transaction, whose outcome
								 * the clog gives; else invalid */
	uint32		pad;
	TimestampTz time;			/* when it was queued */
} NotifyExtBatchHeader;

/* an entry: this header, then channel bytes, then payload bytes (no NULs) */
typedef struct NotifyExtEntryHeader
{
	uint32		payloadLen;
	uint16		channelLen;
	uint16		pad;
} NotifyExtEntryHeader;

/* shared channel hash: key and entry */
typedef struct NeChannelKey
{
	Oid			dboid;
	char		channel[NAMEDATALEN];	/* zero-padded */
} NeChannelKey;

typedef struct NeChannelEntry
{
	NeChannelKey key;
	int			nlisteners;
	pg_atomic_uint64 sent;		/* notifications queued on it while listened */
	uint64		bits[FLEXIBLE_ARRAY_MEMBER];	/* bitmapWords words */
} NeChannelEntry;

/* a pattern subscription (pattern.c): shared table entry */
#define NE_PATTERN_MAXLEN		(2 * NAMEDATALEN)	/* escapes double a name */

typedef struct NePatternEntry
{
	Oid			dboid;
	int			nlisteners;		/* 0: free entry */
	char		pattern[NE_PATTERN_MAXLEN];
	uint64		bits[FLEXIBLE_ARRAY_MEMBER];	/* bitmapWords words */
} NePatternEntry;

/* a notification buffered by the current transaction (xact.c) */
typedef struct NePendingNotify
{
	SubTransactionId subid;		/* subtransaction that sent it */
	uint32		payloadLen;
	uint16		channelLen;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* channel\0payload\0 */
} NePendingNotify;

#define NE_PN_CHANNEL(n)	((n)->data)
#define NE_PN_PAYLOAD(n)	((n)->data + (n)->channelLen + 1)

/* module.c */
extern NotifyExtShared *ne_shared;
extern char *ne_ring;
extern HTAB *ne_channel_hash;
extern int	ne_queue_size_kb;
extern int	ne_max_channels;
extern void ne_check_preloaded(void);
extern Size ne_batch_header_size(void);

/* queue.c */
extern void ne_ring_read(uint64 pos, void *dst, Size len);
extern void ne_ring_write(uint64 pos, const void *src, Size len);
extern bool ne_queue_read(uint64 pos, void *dst, Size len);
extern uint32 ne_queue_batch_state(uint64 pos, NotifyExtBatchHeader *hdr);
extern void ne_queue_publish(NePendingNotify **notifies, int n,
							 uint64 *posOut, int **wakeSlotsOut, int *nwake);
extern void ne_queue_set_state(uint64 batchPos, uint32 state);
extern double ne_queue_usage(void);
extern void ne_queue_advance_tail_locked(void);
extern int	ne_queue_oldest_listener(uint64 *pos, bool *sending);
extern void ne_queue_settle_replayed(uint64 pos, uint32 state);

/* registry.c */
typedef struct NeLocalChannel
{
	char		channel[NAMEDATALEN];	/* hash key */
	uint64		startPos;		/* ignore batches before this position */
	uint64		seqno;			/* LISTEN order, for listing */
	bool		committed;		/* false between PRE_COMMIT and COMMIT */
} NeLocalChannel;

extern HTAB *ne_local_channels;
extern bool ne_slot_active;
extern int	ne_my_slot(void);
extern void ne_registry_prepare_slot(void);
extern void ne_registry_activate_slot_locked(void);
extern void ne_registry_add(char **channels, int n);
extern void ne_registry_remove_patterns(char **patterns, int n);
extern void ne_registry_commit_added(char **channels, int n);
extern void ne_registry_remove(char **channels, int n);
extern void ne_registry_remove_all(void);
extern void ne_registry_remove_uncommitted(void);
extern NeChannelEntry *ne_registry_bitmap(Oid dboid, const char *channel, uint64 *bitmap);
extern bool ne_registry_slot_listens(Oid dboid, const char *channel, int slot);
extern NeLocalChannel *ne_local_lookup(const char *channel);
extern List *ne_registry_listening_channels(void);

typedef struct NeListenerInfo
{
	int			pid;
	Oid			dboid;
	char		channel[NAMEDATALEN];
} NeListenerInfo;

extern List *ne_registry_snapshot(void);

/* xact.c */
extern void ne_xact_init(void);
extern void ne_add_notify(const char *channel, const char *payload);
extern void ne_add_listen_action(int action, const char *channel);
extern void ne_check_listen_allowed(const char *cmdname, bool listen);

#define NE_ACTION_LISTEN		1
#define NE_ACTION_UNLISTEN		2
#define NE_ACTION_UNLISTEN_ALL	3
#define NE_ACTION_LISTEN_PATTERN	4
#define NE_ACTION_UNLISTEN_PATTERN	5

/* pattern.c */
extern int	ne_max_patterns;
extern Size ne_pattern_entry_size(void);
extern Size ne_pattern_shmem_size(void);
extern void ne_pattern_shmem_init(char *table, bool found);
extern bool ne_like_match(const char *s, const char *pat);
extern void ne_validate_pattern(const char *pattern);
extern void ne_pattern_bitmap(Oid dboid, const char *channel, uint64 *bitmap);
extern bool ne_pattern_slot_matches(Oid dboid, const char *channel, int slot);
extern int	ne_pattern_local_count(void);
extern bool ne_pattern_local_match(const char *channel, uint64 pos);
extern List *ne_pattern_listening(void);
extern void ne_pattern_add(char **patterns, int n);
extern void ne_pattern_commit_added(char **patterns, int n);
extern void ne_pattern_remove_uncommitted_locked(void);
extern void ne_pattern_remove_locked(char **patterns, int n);
extern void ne_pattern_remove_all_locked(void);

/* spill.c */
#define NE_SEG_SIZE				(UINT64CONST(1) << 20)	/* bytes per spill file */
extern int	ne_queue_disk_limit_mb;
extern uint64 ne_disk_limit_bytes(void);
extern void ne_spill_reset_dir(void);
extern void ne_spill_prepare(void);
extern void ne_spill_invalidate_cache(void);
extern bool ne_spill_read(uint64 pos, void *dst, Size len, uint64 validEnd);
extern const char *ne_spill_last_error(void);
extern void ne_spill_write(uint64 pos, const void *src, Size len);
extern void ne_spill_from_ring(uint64 from, uint64 to);
extern void ne_spill_note_segments(uint64 from, uint64 to);
extern void ne_spill_unlink_below(uint64 tail);
extern bool ne_record_settle(int slotno);

/* how a batch of `total` bytes gets its room (ne_queue_plan) */
typedef struct NeRoomPlan
{
	bool		fits;
	bool		giant;			/* larger than the ring: straight to disk */
	uint64		spillTo;		/* spill the ring up to here first, or 0 */
	uint64		tailTarget;		/* !fits: where the tail must get to */
} NeRoomPlan;

extern void ne_queue_plan(uint64 total, NeRoomPlan *plan);
extern void ne_queue_spill(uint64 to);

/* walrec.c: a WAL record of ours, XLOG_NE_BATCH: this, then entries as in the queue */
#define XLOG_NE_BATCH		0x00

typedef struct xl_ne_batch
{
	Oid			dboid;
	int32		srcPid;
	uint32		nentries;
} xl_ne_batch;

extern bool ne_wal_log;
extern void ne_wal_init(void);
extern void ne_wal_log_batch(NePendingNotify **notifies, int n);
extern void ne_wal_listen_notice(void);

/* replay.c */
struct XLogReaderState;
extern uint32 ne_wal_resolve_state(TransactionId xid);
extern void ne_replay_redo(struct XLogReaderState *record);
extern void ne_replay_cleanup(void);
extern void ne_replay_init(void);

/* replay_gap.c: a replayed batch a standby could not queue */
typedef struct NeLost NeLost;
extern NeLost *ne_lost_build(Oid dboid, const char *entries, Size len, uint32 n);
extern void ne_lost_report(NeLost *lost);
extern void ne_lost_free(NeLost *lost);
extern NeLost *ne_lost_chain(NeLost *list, NeLost *item);

/* overflow.c */
extern int	ne_queue_full_action;
extern void ne_gap_add(NeGap *gap, const char *channel);
extern void ne_gap_merge(NeGap *dst, const NeGap *src);
typedef struct NeAffected		/* a listener moved by ne_queue_make_room */
{
	int			slot;
	int			pid;
	uint64		missed;
} NeAffected;

extern bool ne_queue_make_room(uint64 tailTarget, bool forceSkip,
							   NeAffected **affected, int *naffected);
extern void ne_overflow_after_publish(const NeAffected *affected, int naffected);
extern void ne_overflow_init(void);
extern Size ne_gap_build(const NeGap *gap, char *buf, Size bufsize,
						 bool notice);
extern void ne_gap_send(const NeGap *gap, char *buf, Size bufsize);

/* deliver.c */
extern void ne_deliver_prepare(void);
extern void ne_deliver_if_pending(bool flush);
extern void ne_deliver(bool flush);
extern void ne_deliver_reset_resume(void);
extern void ne_signal_listeners(const int *slots, int n);
extern void ne_send_one(const char *body, uint32 bodyLen);
extern void ne_put_notice(const char *body, Size len);

/* sqlapi.c */
extern int	ne_max_payload_size;
extern void ne_validate_channel(const char *channel);
extern void ne_check_payload(const char *payload);

/* intercept.c */
extern bool ne_intercept;
extern void ne_intercept_init(void);

#endif							/* NOTIFY_EXT_H */
