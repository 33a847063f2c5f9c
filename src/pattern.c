/*-------------------------------------------------------------------------
 *
 * pattern.c
 *	  Pattern subscriptions: ext_listen_pattern('orders.%').
 *
 * A pattern uses SQL LIKE syntax (% any string, _ one character, backslash
 * escapes the next character) and matches channel names of its database.
 * It behaves like a LISTEN on every matching channel, present and future:
 * transactional (registered at PRE_COMMIT, in effect at COMMIT), gone with
 * UNLISTEN *, DISCARD ALL and the session, and a new pattern receives
 * nothing queued before it was registered.
 *
 * Shared side: a fixed table of (database, pattern) entries, each with the
 * bitmap of listener slots that use it, under registryLock like the
 * channel hash.  Entries in use are kept compact at the front of the table
 * (a freed entry is replaced by the last one), so every scan costs the
 * number of patterns listened to, not the table's size.  The publisher ORs in the bitmaps of the patterns of its
 * database that match each channel of its batch (ne_pattern_bitmap), so
 * only matching sessions are named and woken.  With no pattern in use the
 * cost is one counter test.
 *
 * Local side: this session's patterns with their start positions; the
 * drain delivers an entry whose channel is listened to, or matches one of
 * them, once (ne_pattern_local_match).  Nothing there can fail.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/memutils.h"

int			ne_max_patterns = 1024;

/* shared table: ne_max_patterns entries of ne_pattern_entry_size() bytes */
static char *ne_pattern_table = NULL;

/* this session's patterns */
typedef struct NeLocalPattern
{
	char		pattern[NE_PATTERN_MAXLEN];
	uint64		startPos;
	bool		committed;
} NeLocalPattern;

static NeLocalPattern *local_patterns = NULL;
static int	nlocal = 0;
static int	maxlocal = 0;

Size
ne_pattern_entry_size(void)
{
	return MAXALIGN(offsetof(NePatternEntry, bits) +
					sizeof(uint64) * ((MaxBackends + 63) / 64));
}

Size
ne_pattern_shmem_size(void)
{
	return mul_size(ne_max_patterns, ne_pattern_entry_size());
}

void
ne_pattern_shmem_init(char *table, bool found)
{
	ne_pattern_table = table;
	if (!found)
		memset(table, 0, ne_pattern_shmem_size());
}

static inline NePatternEntry *
ne_pattern_entry(int i)
{
	return (NePatternEntry *) (ne_pattern_table + (Size) i * ne_pattern_entry_size());
}

/*
 * LIKE matching of a channel name, as core's LIKE does it: % matches any
 * string, _ one character (of the database encoding), \ makes the next
 * character literal.  The pattern has been validated (no trailing escape).
 * Iterative, with one backtracking point: never fails, never recurses.
 */
bool
ne_like_match(const char *s, const char *pat)
{
	const char *se = s + strlen(s);
	const char *p = pat;
	const char *pe = pat + strlen(pat);
	const char *star_p = NULL;
	const char *star_s = NULL;

	while (s < se)
	{
		if (p < pe && *p == '%')
		{
			while (p < pe && *p == '%')
				p++;
			if (p == pe)
				return true;
			star_p = p;
			star_s = s;
			continue;
		}
		if (p < pe && *p == '_')
		{
			s += Min(pg_mblen(s), se - s);
			p++;
			continue;
		}
		if (p < pe)
		{
			const char *lit = (*p == '\\') ? p + 1 : p;
			int			len = Min(pg_mblen(lit), pe - lit);

			if (se - s >= len && memcmp(s, lit, len) == 0)
			{
				s += len;
				p = lit + len;
				continue;
			}
		}
		if (star_p == NULL)
			return false;
		star_s += Min(pg_mblen(star_s), se - star_s);
		s = star_s;
		p = star_p;
	}
	while (p < pe && *p == '%')
		p++;
	return p == pe;
}

/* core's rules, plus ours: not empty, under NE_PATTERN_MAXLEN, no trailing \ */
void
ne_validate_pattern(const char *pattern)
{
	size_t		len = pattern ? strlen(pattern) : 0;
	const char *p;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel pattern cannot be empty")));
	if (len >= NE_PATTERN_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel pattern too long"),
				 errdetail("A pattern must be shorter than %d bytes.", NE_PATTERN_MAXLEN)));
	(void) pg_verifymbstr(pattern, (int) len, false);
	for (p = pattern; *p;)
	{
		if (*p == '\\')
		{
			if (p[1] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_ESCAPE_SEQUENCE),
						 errmsg("LIKE pattern must not end with escape character")));
			p++;
		}
		p += pg_mblen(p);
	}
}

/*
 * OR into bitmap the slots whose patterns (in dboid) match channel.
 * Caller holds registryLock.
 */
void
ne_pattern_bitmap(Oid dboid, const char *channel, uint64 *bitmap)
{
	for (int i = 0; i < ne_shared->npatterns; i++)
	{
		NePatternEntry *e = ne_pattern_entry(i);

		if (e->dboid != dboid)
			continue;
		if (ne_like_match(channel, e->pattern))
		{
			for (int w = 0; w < ne_shared->bitmapWords; w++)
				bitmap[w] |= e->bits[w];
		}
	}
}

/* Does one of slot's patterns (in dboid) match channel?  registryLock held. */
bool
ne_pattern_slot_matches(Oid dboid, const char *channel, int slot)
{
	uint64		mask = UINT64CONST(1) << (slot % 64);

	for (int i = 0; i < ne_shared->npatterns; i++)
	{
		NePatternEntry *e = ne_pattern_entry(i);

		if (e->dboid != dboid || (e->bits[slot / 64] & mask) == 0)
			continue;
		if (ne_like_match(channel, e->pattern))
			return true;
	}
	return false;
}

static NeLocalPattern *
ne_local_pattern(const char *pattern)
{
	for (int i = 0; i < nlocal; i++)
	{
		if (strcmp(local_patterns[i].pattern, pattern) == 0)
			return &local_patterns[i];
	}
	return NULL;
}

int
ne_pattern_local_count(void)
{
	return nlocal;
}

/*
 * Drain: is this entry of the batch at pos for us through a pattern?
 * Cannot fail.
 */
bool
ne_pattern_local_match(const char *channel, uint64 pos)
{
	for (int i = 0; i < nlocal; i++)
	{
		NeLocalPattern *lp = &local_patterns[i];

		if (lp->committed && lp->startPos <= pos &&
			ne_like_match(channel, lp->pattern))
			return true;
	}
	return false;
}

/* the committed patterns, in LISTEN order, for ext_listening_patterns() */
List *
ne_pattern_listening(void)
{
	List	   *result = NIL;

	for (int i = 0; i < nlocal; i++)
	{
		if (local_patterns[i].committed)
			result = lappend(result, pstrdup(local_patterns[i].pattern));
	}
	return result;
}

/* clear our bit on (MyDatabaseId, pattern).  registryLock held exclusively. */
static void
ne_pattern_shared_remove_locked(const char *pattern)
{
	int			slot = ne_my_slot();
	uint64		mask = UINT64CONST(1) << (slot % 64);

	for (int i = 0; i < ne_shared->npatterns; i++)
	{
		NePatternEntry *e = ne_pattern_entry(i);

		if (e->dboid != MyDatabaseId || strcmp(e->pattern, pattern) != 0)
			continue;
		if ((e->bits[slot / 64] & mask) != 0)
		{
			e->bits[slot / 64] &= ~mask;
			if (--e->nlisteners == 0)
			{
				/* keep the table compact: the last entry takes this place */
				int			last = --ne_shared->npatterns;

				if (i != last)
					memcpy(e, ne_pattern_entry(last), ne_pattern_entry_size());
			}
		}
		return;
	}
}

static void
ne_local_remove_at(int i)
{
	/* keep LISTEN order, for ext_listening_patterns() */
	memmove(&local_patterns[i], &local_patterns[i + 1],
			sizeof(NeLocalPattern) * (nlocal - i - 1));
	nlocal--;
}

/*
 * PRE_COMMIT: register patterns not yet listened to.  May ERROR (table
 * full); the abort callback then removes what was added
 * (ne_pattern_remove_uncommitted).
 */
void
ne_pattern_add(char **patterns, int n)
{
	uint64		head;
	int			slot;
	uint64		mask;

	if (n == 0)
		return;
	ne_registry_prepare_slot();
	slot = ne_my_slot();
	mask = UINT64CONST(1) << (slot % 64);

	if (nlocal + n > maxlocal)
	{
		int			newmax = Max(8, Max(maxlocal * 2, nlocal + n));

		if (local_patterns == NULL)
			local_patterns = MemoryContextAlloc(TopMemoryContext,
												sizeof(NeLocalPattern) * newmax);
		else
			local_patterns = repalloc(local_patterns, sizeof(NeLocalPattern) * newmax);
		maxlocal = newmax;
	}

	LWLockAcquire(ne_shared->registryLock, LW_EXCLUSIVE);
	ne_registry_activate_slot_locked();
	LWLockAcquire(ne_shared->queueLock, LW_SHARED);
	head = ne_shared->head;
	LWLockRelease(ne_shared->queueLock);

	for (int k = 0; k < n; k++)
	{
		NePatternEntry *found = NULL;
		NeLocalPattern *lp;

		if (ne_local_pattern(patterns[k]) != NULL)
			continue;
		for (int i = 0; i < ne_shared->npatterns && found == NULL; i++)
		{
			NePatternEntry *e = ne_pattern_entry(i);

			if (e->dboid == MyDatabaseId && strcmp(e->pattern, patterns[k]) == 0)
				found = e;
		}
		if (found == NULL)
		{
			if (ne_shared->npatterns >= ne_max_patterns)
			{
				LWLockRelease(ne_shared->registryLock);
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many channel patterns being listened to"),
						 errdetail("notify_ext.max_patterns (%d) distinct database and pattern pairs are listened to already.",
								   ne_max_patterns),
						 errhint("Increase notify_ext.max_patterns.")));
			}
			found = ne_pattern_entry(ne_shared->npatterns);
			memset(found, 0, ne_pattern_entry_size());
			found->dboid = MyDatabaseId;
			strlcpy(found->pattern, patterns[k], NE_PATTERN_MAXLEN);
			ne_shared->npatterns++;
		}
		if ((found->bits[slot / 64] & mask) == 0)
		{
			found->bits[slot / 64] |= mask;
			found->nlisteners++;
		}
		lp = &local_patterns[nlocal++];
		memset(lp, 0, sizeof(*lp));
		strlcpy(lp->pattern, patterns[k], NE_PATTERN_MAXLEN);
		lp->startPos = head;
		lp->committed = false;
	}
	LWLockRelease(ne_shared->registryLock);
}

/* COMMIT: the patterns registered at PRE_COMMIT are in effect. */
void
ne_pattern_commit_added(char **patterns, int n)
{
	for (int k = 0; k < n; k++)
	{
		NeLocalPattern *lp = ne_local_pattern(patterns[k]);

		if (lp != NULL)
			lp->committed = true;
	}
}

/* ABORT: drop uncommitted patterns.  registryLock held exclusively. */
void
ne_pattern_remove_uncommitted_locked(void)
{
	for (int i = nlocal - 1; i >= 0; i--)
	{
		if (local_patterns[i].committed)
			continue;
		if (ne_slot_active)
			ne_pattern_shared_remove_locked(local_patterns[i].pattern);
		ne_local_remove_at(i);
	}
}

/* COMMIT: unlisten these patterns.  registryLock held exclusively. */
void
ne_pattern_remove_locked(char **patterns, int n)
{
	for (int k = 0; k < n; k++)
	{
		for (int i = 0; i < nlocal; i++)
		{
			if (strcmp(local_patterns[i].pattern, patterns[k]) != 0)
				continue;
			if (ne_slot_active)
				ne_pattern_shared_remove_locked(patterns[k]);
			ne_local_remove_at(i);
			break;
		}
	}
}

/* UNLISTEN *, DISCARD ALL, session exit.  registryLock held exclusively. */
void
ne_pattern_remove_all_locked(void)
{
	while (nlocal > 0)
	{
		if (ne_slot_active)
			ne_pattern_shared_remove_locked(local_patterns[nlocal - 1].pattern);
		nlocal--;
	}
}
