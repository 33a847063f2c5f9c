#!/usr/bin/env bash
#
# test/upgrade/run.sh: ALTER EXTENSION notify_ext UPDATE from 1.0 must give
# exactly what a fresh CREATE EXTENSION of the default version gives.
#
# In two fresh databases of the running cluster (PGHOST, PGPORT, PGUSER from
# the environment; scripts/test.sh's suite "upgrade"):
#   ne_upgrade_updated   CREATE EXTENSION notify_ext VERSION '1.0', then
#                        ALTER EXTENSION notify_ext UPDATE
#   ne_upgrade_fresh     CREATE EXTENSION notify_ext
# and compares the extension's member objects (pg_depend deptype 'e'): each
# with pg_describe_object, its definition (pg_get_functiondef for functions
# with their volatility, parallel safety, strictness and comment;
# pg_get_viewdef and the column types for views), its ACL and its initial
# privileges (pg_init_privs); then pg_dump --schema-only of both, and the
# same with --binary-upgrade (which dumps every member object one by one),
# without the lines that differ by nature (OIDs, pg_dump's \restrict key).
# Prints TAP lines; exits non-zero if any failed.  The databases are dropped
# at the end unless KEEP=1.
set -uo pipefail

UPDATED=ne_upgrade_updated
FRESH=ne_upgrade_fresh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ne_upgrade.XXXXXX")
n=0
failed=0

cleanup() {
	if [ "${KEEP:-0}" != 1 ]; then
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $UPDATED WITH (FORCE)" \
			-c "DROP DATABASE IF EXISTS $FRESH WITH (FORCE)" >/dev/null 2>&1
		rm -rf "$WORK"
	else
		echo "# kept: databases $UPDATED and $FRESH, files in $WORK"
	fi
}
trap cleanup EXIT

# tap DESCRIPTION CMD...: one TAP line for CMD's success
tap() {
	local desc=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		failed=$((failed + 1))
	fi
}

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# quiet: only whether it worked (and its errors)
qq() { q "$@" >/dev/null; }

# diff_files A B WHAT: compare, show the differences if any
diff_files() {
	if diff -u "$1" "$2" >"$WORK/diff.out"; then
		return 0
	fi
	echo "# $3 differ (< updated from 1.0, > fresh):"
	sed 's/^/#   /' "$WORK/diff.out" | head -n 200
	return 1
}

# the extension's member objects with their definitions, one per block
describe() {
	q -d "$1" <<'SQL'
WITH members AS (
  SELECT d.classid, d.objid, d.objsubid
    FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND e.extname = 'notify_ext'
)
SELECT format(E'== %s\n%s\nacl: %s\ninit privileges: %s\ncomment: %s\n',
         pg_describe_object(m.classid, m.objid, m.objsubid),
         CASE
           WHEN m.classid = 'pg_proc'::regclass THEN
             (SELECT format(E'%sprokind %s, volatile %s, parallel %s, strict %s, security definer %s, leakproof %s, cost %s, rows %s, config %s',
                            pg_get_functiondef(p.oid), p.prokind, p.provolatile, p.proparallel,
                            p.proisstrict, p.prosecdef, p.proleakproof, p.procost, p.prorows,
                            p.proconfig)
                FROM pg_proc p WHERE p.oid = m.objid)
           WHEN m.classid = 'pg_class'::regclass THEN
             (SELECT format(E'relkind %s, options %s\n%s%s',
                            c.relkind, c.reloptions,
                            CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) || E'\n' ELSE '' END,
                            (SELECT string_agg(format('column %s %s%s', a.attname,
                                                      format_type(a.atttypid, a.atttypmod),
                                                      CASE WHEN a.attnotnull THEN ' not null' ELSE '' END),
                                               E'\n' ORDER BY a.attnum)
                               FROM pg_attribute a
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
                FROM pg_class c WHERE c.oid = m.objid)
           ELSE '(no definition compared)'
         END,
         CASE
           WHEN m.classid = 'pg_proc'::regclass THEN (SELECT proacl::text FROM pg_proc WHERE oid = m.objid)
           WHEN m.classid = 'pg_class'::regclass THEN (SELECT relacl::text FROM pg_class WHERE oid = m.objid)
           WHEN m.classid = 'pg_type'::regclass THEN (SELECT typacl::text FROM pg_type WHERE oid = m.objid)
         END,
         (SELECT string_agg(format('%s %s', i.privtype, i.initprivs), '; ')
            FROM pg_init_privs i
           WHERE i.classoid = m.classid AND i.objoid = m.objid AND i.objsubid = m.objsubid),
         obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)))
  FROM members m
 ORDER BY pg_describe_object(m.classid, m.objid, m.objsubid);
SQL
}

# -------------------------------------------------------------- set-up
for db in "$UPDATED" "$FRESH"; do
	q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
		-c "CREATE DATABASE $db TEMPLATE template0" ||
		{ echo "Bail out! could not create database $db"; exit 1; }
done

default_version=$(q -d "$FRESH" -c "SELECT default_version FROM pg_available_extensions WHERE name = 'notify_ext'")
echo "# default version of notify_ext: $default_version"
tap "the default version is 1.1 (it is $default_version)" test "$default_version" = 1.1
paths=$(q -d "$FRESH" -c "SELECT path FROM pg_extension_update_paths('notify_ext') WHERE source = '1.0' AND target = '1.1'")
tap "there is an update path from 1.0 to 1.1 ($paths)" test "$paths" = "1.0--1.1"

tap "CREATE EXTENSION notify_ext VERSION '1.0'" \
	qq -d "$UPDATED" -c "CREATE EXTENSION notify_ext VERSION '1.0'"
v=$(q -d "$UPDATED" -c "SELECT extversion FROM pg_extension WHERE extname = 'notify_ext'")
tap "version 1.0 installed (extversion $v)" test "$v" = 1.0
nviews=$(q -d "$UPDATED" -c "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
	WHERE e.extname = 'notify_ext' AND d.deptype = 'e' AND d.classid = 'pg_class'::regclass")
tap "1.0 has no views ($nviews)" test "$nviews" = 0

tap "1.0 works before the update" \
	qq -d "$UPDATED" -c "SELECT ext_notify('upgrade_chan', 'before the update'), count(*) FROM ext_listeners()"

tap "ALTER EXTENSION notify_ext UPDATE" qq -d "$UPDATED" -c "ALTER EXTENSION notify_ext UPDATE"
v=$(q -d "$UPDATED" -c "SELECT extversion FROM pg_extension WHERE extname = 'notify_ext'")
tap "updated to $default_version (extversion $v)" test "$v" = "$default_version"

tap "CREATE EXTENSION notify_ext (default version)" qq -d "$FRESH" -c "CREATE EXTENSION notify_ext"
v=$(q -d "$FRESH" -c "SELECT extversion FROM pg_extension WHERE extname = 'notify_ext'")
tap "fresh install is $default_version (extversion $v)" test "$v" = "$default_version"

# ------------------------------------------------------ member objects
describe "$UPDATED" >"$WORK/members.updated" 2>&1
describe "$FRESH" >"$WORK/members.fresh" 2>&1
nu=$(grep -c '^== ' "$WORK/members.updated")
nf=$(grep -c '^== ' "$WORK/members.fresh")
echo "# member objects: $nu after the update, $nf in a fresh install"
grep '^== ' "$WORK/members.fresh" | sed 's/^== /#   /'
tap "the same number of member objects ($nu, $nf)" test "$nu" = "$nf" -a "$nf" -gt 0
tap "member objects, their definitions, ACLs, initial privileges and comments are identical" \
	diff_files "$WORK/members.updated" "$WORK/members.fresh" "member objects"

# the monitoring views work after the update
tap "the views can be read after the update" \
	qq -d "$UPDATED" -c "SELECT (SELECT count(*) FROM notify_ext_queue), (SELECT count(*) FROM notify_ext_listeners), (SELECT count(*) FROM notify_ext_channels)"

# ------------------------------------------------------------- pg_dump
# the lines that differ by nature: database names, the random key of
# pg_dump's \restrict / \unrestrict lines; with --binary-upgrade also the
# preserved OIDs
normalise() {
	sed -E -e "s/$UPDATED|$FRESH/DBNAME/g" -e '/^\\(un)?restrict /d' \
		-e '/binary_upgrade_set_next_/d' -e '/binary_upgrade_set_pg_class_oids/d' \
		-e "/^-- (TOC entry|Dependencies): /d" "$1"
}
dump_compare() {
	local what=$1
	shift
	for db in "$UPDATED" "$FRESH"; do
		if ! pg_dump --schema-only "$@" -d "$db" >"$WORK/dump.$db" 2>"$WORK/dump.$db.err"; then
			echo "# pg_dump $* $db failed:"
			sed 's/^/#   /' "$WORK/dump.$db.err"
			return 1
		fi
		normalise "$WORK/dump.$db" >"$WORK/dump.$db.norm"
	done
	diff_files "$WORK/dump.$UPDATED.norm" "$WORK/dump.$FRESH.norm" "$what"
}
tap "pg_dump --schema-only: identical" dump_compare "pg_dump --schema-only outputs"
tap "pg_dump --schema-only --binary-upgrade (every member object): identical" \
	dump_compare "pg_dump --binary-upgrade outputs" --binary-upgrade
nmembers=$(grep -c '^ALTER EXTENSION notify_ext ADD ' "$WORK/dump.$FRESH" || true)
echo "# pg_dump --binary-upgrade dumped $nmembers member objects one by one"
tap "the --binary-upgrade dump lists every member object ($nmembers of $nf)" test "$nmembers" = "$nf"

echo "1..$n"
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
