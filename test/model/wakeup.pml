/*
 * wakeup.pml: a Promela model of notify_ext's wake-up protocol (publish,
 * signal, drain, slot reuse), checked exhaustively by Spin; run by
 * test/model/run.sh, described in test/model/README.md.
 *
 * What is modelled (src/notify_ext.h, "THE WAKE-UP PROTOCOL"):
 *   - ONE listener slot, owned in turn by two backends ("incarnations"):
 *     pid 1 LISTENs, drains what it is woken for, then exits (releases the
 *     slot); pid 2 then gets the same slot (same BackendId), LISTENs and
 *     stays idle for ever: only a catch-up signal makes it drain.
 *   - NPUB publishers, one transaction each.  At PRE_COMMIT (registryLock +
 *     queueLock: one step here) a batch is appended in state PENDING if the
 *     slot listens (the bitmap names it), and the slot's wakeupPos is pointed
 *     at it if it was INVALID.  At COMMIT or ABORT, without lock, the state
 *     word is flipped, then the slot is signalled (ne_signal_listeners).
 *   - The drain (ne_deliver_if_pending + ne_drain_some): clear the flag, read
 *     wakeupPos (unlocked hint), then under queueLock consume COMMITTED
 *     batches from wakeupPos on, skip ABORTED ones, stop at a PENDING one.
 *     It runs after the LISTEN (before ReadyForQuery) and once per signal.
 *   - A signal is SendProcSignal(pid): it coalesces with one not yet taken
 *     (a mailbox of size 1 per pid) and is lost if that pid is gone.
 *
 * Two variants of the signaller, chosen with -DNEW:
 *   old (defect D2): pid = slot->pid, then, as a separate step,
 *        atomic_exchange(&slot->signaled, 1), and signal pid if it was 0.
 *   new (the fix):   pid, generation and flag are ONE atomic word; the flag
 *        is set by CAS on exactly the word the pid was read from.
 *
 * The property, checked when the system has come to rest (all publishers
 * done, listener 2 waiting for a signal, no signal on its way to it):
 *     every COMMITTED batch that names listener 2 has been consumed.
 * At rest nothing will ever wake listener 2 again, so a batch left over is
 * never delivered unless its client sends something: a lost wake-up.  The
 * Check process has no end label, so a final state in which it did not run
 * would be reported as an invalid end state: every final state is checked.
 *
 * -DMUTANT_CLEAR_LATE (with -DNEW) moves the listener's flag clear after
 * its read of the queue, a known-wrong order, to show the check has teeth.
 *
 * Abstractions: registryLock is folded into queueLock (whatever takes
 * registryLock here also holds queueLock across the part that matters);
 * memory is sequentially consistent (the C code has barriers exactly where
 * the model relies on order); batch positions are small indexes.  printf
 * lines only show up when a trail is replayed (spin -t), not in pan.
 */

#ifndef NPUB
#define NPUB		2		/* publishers, one transaction each (2 or 3) */
#endif
#if NPUB < 2 || NPUB > 3
#error "NPUB must be 2 or 3"
#endif
#define NB			NPUB	/* at most one batch per transaction */
#define INVALID		255		/* NE_INVALID_POS */
#define NGEN		4		/* generation counter, modulo */

/* batch states */
#define EMPTY		0
#define PENDING		1
#define COMMITTED	2
#define ABORTED		3

/* ---------------------------------------------------------------- the queue */
byte head = 0;				/* next batch index; under queueLock */
byte bstate[NB];			/* atomic state word of each batch */
/* ghost variables, for the property only */
byte bnamed[NB];			/* pid owning the slot when the batch was written */
bool consumed[NB];			/* drained by a listener */

/* --------------------------------------------------------- the listener slot */
byte slot_pid = 0;			/* slot->pid (0 = free); under queueLock */
byte wakeupPos = INVALID;	/* written under queueLock, read as a hint without */
#ifdef NEW
/* slot->wake, ONE 64-bit atomic word: pid << 32 | gen << 1 | flag.  Only
 * ever read or written as a whole (the atomic blocks below). */
byte wake_pid = 0;
byte wake_gen = 0;
bit  wake_flag = 0;
#else
bit  signaled = 0;			/* slot->signaled, an atomic of its own */
#endif

bit queueLock = 0;

/* ---------------------------------------------------------------- processes */
chan mbox[3] = [1] of { bit };	/* pending catch-up interrupt of pid 1, 2 */
bool alive[3];				/* pid owns the slot and takes signals */
bool idle2 = false;			/* listener 2 waits for a signal (ghost) */
byte npub_done = 0;			/* publishers that have finished (ghost) */

#define LOCK(l)		atomic { l == 0 -> l = 1 }
#define UNLOCK(l)	l = 0

/* SendProcSignal(pid, PROCSIG_CATCHUP_INTERRUPT) */
inline send_signal(p)
{
	atomic {
		if
		:: alive[p] && nfull(mbox[p]) -> mbox[p]!1;
			printf("MSC: P%d: SendProcSignal(%d): delivered\n", id, p)
		:: alive[p] && full(mbox[p]) ->
			printf("MSC: P%d: SendProcSignal(%d): one already pending\n", id, p)
		:: !alive[p] ->
			printf("MSC: P%d: SendProcSignal(%d): LOST (no such process)\n", id, p)
		fi
	}
}

/* ne_signal_listeners() for our one slot, once the batch's state word is
 * flipped (COMMITTED or ABORTED) */
inline signal_listener()
{
#ifdef NEW
	atomic {					/* w = pg_atomic_read_u64(&slot->wake) */
		wp = wake_pid; wg = wake_gen; wf = wake_flag;
		printf("MSC: P%d: reads word (pid %d, gen %d, flag %d)\n", id, wp, wg, wf)
	};
	do
	:: wp == 0 || wf == 1 ->
		break					/* nobody there, or a wake-up on its way */
	:: else ->
		atomic {				/* CAS(&slot->wake, &w, w | 1) */
			if
			:: wake_pid == wp && wake_gen == wg && wake_flag == wf ->
				wake_flag = 1; ok = true;
				printf("MSC: P%d: CAS sets the flag\n", id)
			:: else ->
				wp = wake_pid; wg = wake_gen; wf = wake_flag; ok = false;
				printf("MSC: P%d: CAS fails, word now (pid %d, gen %d, flag %d)\n", id, wp, wg, wf)
			fi
		};
		if
		:: ok -> send_signal(wp); break
		:: else -> skip			/* the word changed: decide again */
		fi
	od;
	atomic { wp = 0; wg = 0; wf = 0; ok = false }	/* dead now: fewer states */
#else
	/* read 1 */
	wp = slot_pid;
	printf("MSC: P%d: read 1: slot->pid = %d\n", id, wp);
	if
	:: wp == 0 -> skip
	:: else ->
		/* read 2 */
		atomic {
			wf = signaled; signaled = 1;
			printf("MSC: P%d: read 2: exchange(signaled, 1) returns %d\n", id, wf)
		};
		if
		:: wf == 0 -> send_signal(wp)
		:: else -> skip			/* "a wake-up is on its way": skip */
		fi
	fi;
	atomic { wp = 0; wf = 0 }	/* dead now: fewer states */
#endif
}

/* the listener's clear of its flag: the first thing a drain does */
inline clear_flag()
{
	atomic {
#ifdef NEW
		wake_flag = 0;			/* pg_atomic_fetch_and_u64(&slot->wake, ~1) */
#else
		signaled = 0;			/* pg_atomic_write_u32(&slot->signaled, 0) */
#endif
		printf("MSC: L%d: clears its flag\n", me)
	}
}

/* ne_deliver_if_pending() + ne_drain_some(), run by listener "me" */
inline drain()
{
#ifndef MUTANT_CLEAR_LATE
	clear_flag();				/* then pg_memory_barrier() */
#endif
	if
	:: wakeupPos == INVALID ->	/* unlocked hint: nothing for us */
		printf("MSC: L%d: drain: wakeupPos = INVALID, nothing to read\n", me)
	:: else ->
		LOCK(queueLock);
		pos = wakeupPos;
		printf("MSC: L%d: drain: reads the queue from batch %d\n", me, pos);
		do
		:: pos == INVALID || pos >= head -> break
		:: else ->
			if
			:: bstate[pos] == PENDING ->
				printf("MSC: L%d: batch %d PENDING: stop there\n", me, pos);
				break			/* its publisher signals when it ends */
			:: bstate[pos] == ABORTED -> pos++
			:: bstate[pos] == COMMITTED ->
				/* a new listener never sees batches from before its LISTEN */
				assert(bnamed[pos] == me);
				consumed[pos] = true;
				printf("MSC: L%d: consumes batch %d\n", me, pos);
				pos++
			fi
		od;
		if
		:: pos >= head -> wakeupPos = INVALID	/* (INVALID >= head too) */
		:: else -> wakeupPos = pos
		fi;
		atomic { UNLOCK(queueLock); pos = 0 }
	fi;
#ifdef MUTANT_CLEAR_LATE
	clear_flag();
#endif
	skip
}

/* One backend's life as a listener on the slot. */
proctype Listener(byte me)
{
	byte pos;
	byte g;

	/* LISTEN, PRE_COMMIT: acquire the slot (ne_registry_add) */
	LOCK(queueLock);
	atomic {
		slot_pid = me; wakeupPos = INVALID; alive[me] = true;
		printf("MSC: L%d: LISTEN: takes the slot\n", me)
	};
#ifdef NEW
	g = wake_gen;				/* NE_WAKE_GEN(read(word)) */
	atomic { wake_pid = me; wake_gen = (g + 1) % NGEN; wake_flag = 0; g = 0 };
#else
	signaled = 0;
#endif
	UNLOCK(queueLock);

	/* ReadyForQuery('I') after the LISTEN's commit */
	drain();

	if
	:: me == 1 ->
		/* listen for a while, then exit: release the slot, die */
		do
		:: mbox[me]?_ -> drain()
		:: break
		od;
		LOCK(queueLock);
		atomic {
			slot_pid = 0; wakeupPos = INVALID; alive[me] = false;
			printf("MSC: L%d: exits: releases the slot\n", me)
		};
#ifdef NEW
		g = wake_gen;
		atomic { wake_pid = 0; wake_gen = g; wake_flag = 0; g = 0 };	/* (0, gen, 0) */
#endif
		UNLOCK(queueLock);
		/* the BackendId is free: a new backend gets it and LISTENs */
		run Listener(2)
	:: else ->
		/* an idle client: woken only by the catch-up interrupt */
		do
		:: idle2 = true;
end_idle:	atomic { mbox[me]?_ -> idle2 = false };
			drain()
		od
	fi
}

proctype Publisher(byte id)
{
	byte b = INVALID;
	byte wp;
	bit wf;
#ifdef NEW
	byte wg;
	bool ok;
#endif

	/* PRE_COMMIT, registryLock + queueLock: ne_queue_publish() */
	atomic {
		queueLock == 0 ->
		if
		:: slot_pid != 0 ->		/* the bitmap names the slot: write a batch */
			b = head;
			head++;
			bstate[b] = PENDING;
			bnamed[b] = slot_pid;
			if
			:: wakeupPos == INVALID -> wakeupPos = b
			:: else -> skip
			fi;
			printf("MSC: P%d: PRE_COMMIT: batch %d PENDING, names L%d; wakeupPos = %d\n",
				   id, b, slot_pid, wakeupPos)
		:: else -> skip			/* nobody listens: nothing is written */
		fi
	};

	if
	:: b != INVALID ->
		/* COMMIT or ABORT (no lock): state word, barrier, wake-ups */
		if
		:: bstate[b] = COMMITTED; printf("MSC: P%d: COMMIT batch %d\n", id, b)
		:: bstate[b] = ABORTED; printf("MSC: P%d: ABORT batch %d\n", id, b)
		fi;
		signal_listener()
	:: else -> skip
	fi;
	atomic { npub_done++; b = 0 }
}

/* The property, in every final state (see the header comment). */
#define DRAINED(i)	(i >= head || bnamed[i] != 2 || bstate[i] != COMMITTED || consumed[i])

active proctype Check()
{
	byte i = 0;

	atomic {
		npub_done == NPUB && idle2 && empty(mbox[2]) ->
		do
		:: i < head ->
			if
			:: !DRAINED(i) ->
				printf("MSC: at rest: L2 idle, no signal coming, batch %d (COMMITTED, names L2) never drained\n", i)
			:: else -> skip
			fi;
			assert(DRAINED(i));
			i++
		:: else -> break
		od
	}
}

init
{
	atomic {
		run Listener(1);
		run Publisher(1);
		run Publisher(2);
#if NPUB > 2
		run Publisher(3);
#endif
	}
}
