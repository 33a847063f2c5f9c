/*-------------------------------------------------------------------------
 *
 * walrec.c
 *	  Notifications in the WAL, for listeners on hot standbys: the
 *	  primary's side (notify_ext.wal_log, the records, our resource
 *	  manager); replay.c is the standby's.
 *
 * On the primary, with notify_ext.wal_log on, every notifying transaction
 * writes its notifications at PRE_COMMIT as WAL records of our own
 * resource manager (NE_RMGR_ID), whether or not anyone on the primary
 * listens: streaming replication carries them to every standby.  Such a
 * transaction gets an XID (as in core, whose NOTIFY always takes one).
 * Where the primary has listeners the record is written under queueLock,
 * right after the batch took its place in the ring, so that WAL order and
 * the primary's delivery order agree.  A batch larger than
 * NE_WAL_CHUNK goes in several records, in order.  A record is an
 * xl_ne_batch header (database, sender PID, count), then the entries as
 * they are in the queue; its XID is the transaction's.
 *
 *-------------------------------------------------------------------------
 */
#include "notify_ext.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "miscadmin.h"
#include "utils/guc.h"

/*
 * Our resource manager's ID, from the custom range (128-255; 128 is for
 * experiments).  Documented in the README; a standby must preload
 * notify_ext too, or it cannot replay these records.
 */
#define NE_RMGR_ID			213

/* entries per record, at most (a larger batch takes several records) */
#define NE_WAL_CHUNK		(8 * 1024 * 1024)

bool		ne_wal_log = false;

static void ne_wal_desc(StringInfo buf, XLogReaderState *record);
static const char *ne_wal_identify(uint8 info);

static RmgrData ne_rmgr = {
	.rm_name = "notify_ext",
	.rm_redo = ne_replay_redo,
	.rm_desc = ne_wal_desc,
	.rm_identify = ne_wal_identify,
	.rm_startup = NULL,
	.rm_cleanup = ne_replay_cleanup,
};

/* ------------------------------------------------------------ primary */

static void
ne_wal_insert(Oid dboid, const char *entries, Size len, uint32 n)
{
	xl_ne_batch xl;

	xl.dboid = dboid;
	xl.srcPid = MyProcPid;
	xl.nentries = n;
	XLogBeginInsert();
	XLogRegisterData((char *) &xl, sizeof(xl));
	XLogRegisterData((char *) entries, len);
	(void) XLogInsert(NE_RMGR_ID, XLOG_NE_BATCH);
}

/*
 * Write this transaction's notifications to the WAL, in records of at most
 * NE_WAL_CHUNK bytes of entries.  The transaction has an XID already
 * (xact.c).  May ERROR (before commit).
 */
void
ne_wal_log_batch(NePendingNotify **notifies, int n)
{
	Size		cap = NE_WAL_CHUNK;
	char	   *buf = palloc(cap);
	Size		used = 0;
	uint32		count = 0;

	Assert(TransactionIdIsValid(GetTopTransactionIdIfAny()));
	for (int i = 0; i < n; i++)
	{
		NePendingNotify *pn = notifies[i];
		NotifyExtEntryHeader eh;
		Size		need = sizeof(eh) + pn->channelLen + pn->payloadLen;

		if (used > 0 && used + need > cap)
		{
			ne_wal_insert(MyDatabaseId, buf, used, count);
			used = 0;
			count = 0;
		}
		if (need > cap)
		{
			cap = need;
			buf = repalloc_huge(buf, cap);
		}
		memset(&eh, 0, sizeof(eh));
		eh.channelLen = pn->channelLen;
		eh.payloadLen = pn->payloadLen;
		memcpy(buf + used, &eh, sizeof(eh));
		memcpy(buf + used + sizeof(eh), NE_PN_CHANNEL(pn), eh.channelLen);
		memcpy(buf + used + sizeof(eh) + eh.channelLen, NE_PN_PAYLOAD(pn), eh.payloadLen);
		used += need;
		count++;
	}
	if (count > 0)
		ne_wal_insert(MyDatabaseId, buf, used, count);
	pfree(buf);
}

static void
ne_wal_desc(StringInfo buf, XLogReaderState *record)
{
	xl_ne_batch *xl = (xl_ne_batch *) XLogRecGetData(record);

	appendStringInfo(buf, "db %u, pid %d, %u notifications", xl->dboid,
					 xl->srcPid, xl->nentries);
}

static const char *
ne_wal_identify(uint8 info)
{
	return (info & ~XLR_INFO_MASK) == XLOG_NE_BATCH ? "BATCH" : NULL;
}

/*
 * LISTEN on a standby: say so if no notification has come through the WAL
 * since this standby started (the primary may not write them).
 */
void
ne_wal_listen_notice(void)
{
	if (RecoveryInProgress() && !ne_shared->walSeen)
		ereport(NOTICE,
				(errmsg("notify_ext: this standby has not replayed any notification from its primary since it started"),
				 errhint("Notifications reach standbys only if the primary has notify_ext.wal_log = on.")));
}

void
ne_wal_init(void)
{
	DefineCustomBoolVariable("notify_ext.wal_log",
							 "Write notifications to the WAL, for listeners on hot standbys.",
							 "Every notifying transaction then takes an XID and writes its notifications to the WAL, so its commit waits for the WAL flush unless synchronous_commit is off.",
							 &ne_wal_log,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	RegisterCustomRmgr(NE_RMGR_ID, &ne_rmgr);
	ne_replay_init();
}
