# notify_ext: PGXS build
PG_CONFIG ?= pg_config
MODULE_big = notify_ext
OBJS = \
	src/module.o \
	src/queue.o \
	src/registry.o \
	src/xact.o \
	src/deliver.o \
	src/sqlapi.o \
	src/intercept.o \
	src/trigger.o \
	src/overflow.o \
	src/spill.o \
	src/stats.o \
	src/pattern.o \
	src/walrec.o \
	src/replay.o \
	src/replay_gap.o

EXTENSION = notify_ext
# notify_ext--1.1.sql installs 1.1 directly; 1.0 stays installable and
# notify_ext--1.0--1.1.sql updates it (test/upgrade/run.sh: same result)
DATA = notify_ext--1.0.sql notify_ext--1.1.sql notify_ext--1.0--1.1.sql
# pg_regress suites (sql/, expected/), in order; scripts/test.sh runs them
REGRESS = notify_ext queue_full intercept trigger monitoring patterns payloads
# TAP tests (t/*.pl, PostgreSQL::Test::Cluster: multi-server setups):
# "make installcheck" runs them with prove against the installed binaries
# (PROVE_FLAGS=-v for every result line); scripts/test.sh tap runs them too
TAP_TESTS = 1

PGFILEDESC = "notify_ext - transactional LISTEN/NOTIFY in a preloaded extension"

# -Wextra for our code; PostgreSQL's own headers are included as system
# headers because they are not -Wextra clean (unused parameters).
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CFLAGS = -Wall -Wextra

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared header (struct layouts in shared memory)
$(OBJS): src/notify_ext.h

# the pg_regress suites, for scripts/test.sh
print-regress:
	@echo $(REGRESS)

# make dist: the release archive for PGXN, $(EXTENSION)-$(DIST_VERSION).zip,
# every file under $(EXTENSION)-$(DIST_VERSION)/.  It is git archive of the
# committed HEAD: uncommitted changes and untracked files are not in it, and
# build products (ignored, never committed) cannot be.  DIST_REF=<commit or
# tree> archives another one.  DIST_VERSION must equal META.json's "version"
# and debian/changelog's upstream version (test/package/run.sh checks).
DIST_VERSION = 1.1.0
DIST_REF = HEAD
dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(DIST_VERSION)/ \
		-o $(EXTENSION)-$(DIST_VERSION).zip $(DIST_REF)
.PHONY: dist
