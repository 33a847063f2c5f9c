#!/usr/bin/env bash
#
# test/package/run.sh: build the Debian package from a clean copy of the
# tree, install it for real with dpkg, and test the installed files from
# outside the build tree.  Also checks "make dist" (the PGXN archive).
#
#   1. deps     the build dependencies (debian/control) with apt-get, if missing
#   2. copy     the working tree's files (tracked and untracked, not ignored:
#               what "git status" would commit; a fresh clone is HEAD) into a
#               mktemp directory, so the repository gets no build products
#   3. versions debian/changelog, META.json, the Makefile's DIST_VERSION and
#               notify_ext.control agree
#   4. dist     "make dist" in a second copy made a git repository (git add,
#               git write-tree, DIST_REF=<that tree>; no commit anywhere):
#               notify_ext-<version>.zip has META.json, the control file, the
#               SQL scripts, src/ and debian/, and no .o, .so or .bc
#   5. build    dpkg-buildpackage -us -uc -b (debian/rules runs the pg_regress
#               suites against the build in a pg_virtualenv cluster);
#               no compiler warning
#   6. install  dpkg -i: it goes where "make install" puts the module
#               (/usr/lib/postgresql/15/lib, /usr/share/postgresql/15/extension),
#               replacing those files; dpkg -L must list notify_ext.so, the
#               control file and the SQL scripts, dpkg --verify must be clean
#   7. check    a throwaway cluster (scripts/lib.sh ne_start_cluster, port
#               NE_PKG_PORT, default 55480, notify_ext preloaded) whose
#               postmaster must have mapped the packaged notify_ext.so; the
#               Makefile's REGRESS suites with pg_regress --use-existing from
#               a directory holding only copies of sql/ and expected/ (no
#               src/, no Makefile, no build products); test/upgrade/run.sh
#               (1.0 + ALTER EXTENSION UPDATE == a fresh 1.1) on the same cluster;
#               and debian/tests/installcheck, the autopkgtest (pg_regress in a
#               pg_virtualenv cluster, from the source copy)
#   8. remove   dpkg -r, if the package was not installed before this run, and
#               the files that were at the package's paths before (a "make
#               install") are put back as they were (or as a "make install"
#               meanwhile left them); if it was installed before, the new
#               build stays installed
#
# Prints a progress line per step ("==> ..."), TAP lines ("ok N - ...",
# "not ok N - ..."), the plan and "total: N passed, M failed"; exits non-zero
# if any test failed.  apt-get, dpkg and build output goes to log files that
# are shown only on failure.  Needs root (or sudo) for apt-get and dpkg.
# Environment: KEEP=1 keeps the temporary directory; NE_PKG_PORT;
# NE_SUMMARY_FILE: also write the closing "total:" line there (.ci/run).
# shellcheck disable=SC2016 # single-quoted scripts for bash -c, awk and make
set -uo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$NE_ROOT" || exit 1

PKG=postgresql-$NE_PG_MAJOR-notify-ext
PORT=${NE_PKG_PORT:-55480}
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
# what debian/control's Build-Depends name (postgresql-15 for the build-time
# tests), and python3 (zip listing)
BUILD_DEPS=(debhelper "postgresql-server-dev-all" libkrb5-dev "postgresql-$NE_PG_MAJOR" python3)

WORK=$(mktemp -d /tmp/ne_pkg.XXXXXX)
chmod 755 "$WORK" # the postgres user reaches the cluster directory below
LOG=$WORK/log
mkdir -p "$LOG"
SRC=$WORK/src # holds the copy, ../*.deb land next to it
CLUSTER=$WORK/c
REG=$WORK/regress

n=0
failed=0
installed_before=
we_installed=0
backups=() # package paths that held files before dpkg -i

step() { printf '==> %s\n' "$*"; }

# tap DESCRIPTION CMD...: one TAP line for CMD's success
tap() {
	local desc=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $desc"
		return 0
	fi
	echo "not ok $n - $desc"
	failed=$((failed + 1))
	return 1
}

# logged LOG CMD...: run CMD with its output appended to LOG
logged() {
	local log=$1
	shift
	"$@" >>"$log" 2>&1
}

# show_log FILE [LINES]: the end of a log, after a failure
show_log() {
	echo "# ---- ${1#"$WORK"/} (last ${2:-80} lines) ----"
	tail -n "${2:-80}" "$1" | sed 's/^/# /'
	echo "# ---- end of ${1#"$WORK"/} ----"
}

finish() {
	echo "1..$n"
	local line="total: $((n - failed)) passed, $failed failed"
	[ -z "${NE_SUMMARY_FILE:-}" ] || echo "$line" >"$NE_SUMMARY_FILE"
	echo "$line"
	[ "$failed" -eq 0 ]
}

# bail REASON: stop here (later steps depend on this one), counting it
bail() {
	echo "# stopping: $*"
	finish
	exit 1
}

# remove_package: dpkg -r and put back what was at the package's paths
# before (new files, renamed into place: servers that have the package's
# notify_ext.so mapped keep it); true if all went well
remove_package() {
	local f ok=0
	# a file somebody replaced meanwhile ("make install") is what to put back
	while read -r _ f; do
		[ -f "$f" ] || continue
		mkdir -p "$WORK/backup$(dirname "$f")" && cp -p "$f" "$WORK/backup$f" || ok=1
		case " ${backups[*]} " in
		*" $f "*) ;;
		*) backups+=("$f") ;;
		esac
	done < <(dpkg --verify "$PKG" 2>/dev/null | grep -E '^..5' || true)
	ne_sudo dpkg -r "$PKG" >>"$LOG/dpkg.log" 2>&1 || ok=1
	we_installed=0
	for f in "${backups[@]}"; do
		ne_sudo mkdir -p "$(dirname "$f")" &&
			ne_sudo cp -p "$WORK/backup$f" "$f.ne_pkg_restore" &&
			ne_sudo mv -f "$f.ne_pkg_restore" "$f" || ok=1
	done
	return "$ok"
}

# (fd 3: the real stdout; a trap runs with the redirections of the command
# it interrupted, often a log file)
exec 3>&1
cleanup() {
	local rc=$?
	exec 1>&3 2>&3
	trap '' INT TERM # no second interruption of the clean-up
	[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || echo "# interrupted (exit status $rc)"
	ne_stop_cluster "$CLUSTER" >/dev/null 2>&1
	if [ "$we_installed" = 1 ]; then
		# interrupted or stopped early between dpkg -i and dpkg -r
		echo "# removing $PKG (installed by this run) and restoring the previous files"
		remove_package || echo "# WARNING: could not remove $PKG or restore the previous files: see $LOG/dpkg.log"
	fi
	if [ "${KEEP:-0}" = 1 ] || [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
		echo "# kept $WORK (logs in $LOG)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ deps
step "deps: build dependencies (${BUILD_DEPS[*]})"
# (in a subshell: ne_apt exits on failure)
if ! tap "build dependencies installed" logged "$LOG/apt.log" \
	bash -c '. scripts/lib.sh && ne_apt "$@"' ne_apt "${BUILD_DEPS[@]}"; then
	show_log "$LOG/apt.log"
	bail "missing build dependencies"
fi

# ------------------------------------------------------------------ copy
# the working tree's files that git would see: tracked ones that exist, and
# untracked ones that are not ignored (build products are ignored)
copy_tree() {
	mkdir -p "$1" &&
		git -C "$NE_ROOT" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -f "$NE_ROOT/$f" ] && printf '%s\0' "$f"
		done | tar -C "$NE_ROOT" --null -T - -cf - | tar -C "$1" -xf -
}
step "copy: the working tree into $SRC (no build products)"
command -v git >/dev/null || ne_apt git >>"$LOG/apt.log" 2>&1
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
UPSTREAM=${VERSION%-*}
TOP=$SRC/notify-ext-$UPSTREAM
tap "copied the tree into $TOP" copy_tree "$TOP" || bail "could not copy the tree"
products=$(cd "$TOP" && find . -name '*.o' -o -name '*.so' -o -name '*.bc' -o -name results -o -name 'build-*')
tap "the copy has no build products${products:+ (found: $(echo "$products" | tr "\n" " "))}" test -z "$products"

# -------------------------------------------------------------- versions
step "versions: debian/changelog, META.json, Makefile, notify_ext.control"
meta_version=$("$NE_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$TOP/META.json" 2>/dev/null)
meta_provides=$("$NE_PYTHON" -c 'import json, sys; m = json.load(open(sys.argv[1]))["provides"]["notify_ext"]; print(m["version"], m["file"])' "$TOP/META.json" 2>/dev/null)
dist_version=$(make -s --no-print-directory -C "$TOP" -f Makefile -f - print-dist-version \
	PG_CONFIG="$PG_CONFIG" <<<'print-dist-version: ; @echo $(DIST_VERSION)' 2>/dev/null)
default_version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$TOP/notify_ext.control")
tap "debian/changelog: $VERSION is <upstream>-<debian revision>" test "$UPSTREAM" != "$VERSION"
tap "META.json is valid JSON with version $meta_version = $UPSTREAM" test "$meta_version" = "$UPSTREAM"
tap "Makefile DIST_VERSION $dist_version = $UPSTREAM" test "$dist_version" = "$UPSTREAM"
tap "META.json provides notify_ext $meta_provides: version $UPSTREAM, file notify_ext--$default_version.sql (control's default_version $default_version)" \
	test "$meta_provides" = "$UPSTREAM notify_ext--$default_version.sql" -a -f "$TOP/notify_ext--$default_version.sql" \
	-a "${UPSTREAM%.*}" = "$default_version"

# the Makefile's REGRESS and DATA (the SQL scripts)
read -r -a regress < <(make -s --no-print-directory -C "$TOP" print-regress PG_CONFIG="$PG_CONFIG" 2>/dev/null)
read -r -a data < <(make -s --no-print-directory -C "$TOP" -f Makefile -f - print-data \
	PG_CONFIG="$PG_CONFIG" <<<'print-data: ; @echo $(DATA)' 2>/dev/null)
tap "the Makefile names REGRESS (${regress[*]:-none}) and DATA (${data[*]:-none})" \
	test "${#regress[@]}" -gt 0 -a "${#data[@]}" -gt 0

# ------------------------------------------------------------------ dist
step "dist: make dist (git archive) in a copy made a git repository"
DIST=$WORK/dist
zip=notify_ext-$UPSTREAM.zip
if copy_tree "$DIST" && (cd "$DIST" && git init -q && git add -A &&
	tree=$(git write-tree) && make -s dist DIST_REF="$tree" PG_CONFIG="$PG_CONFIG") >"$LOG/dist.log" 2>&1; then
	tap "make dist made $zip" test -s "$DIST/$zip"
	"$NE_PYTHON" -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' \
		"$DIST/$zip" >"$LOG/dist.list" 2>>"$LOG/dist.log"
	in_zip() { grep -qxF "notify_ext-$UPSTREAM/$1" "$LOG/dist.list"; }
	missing=()
	for f in META.json notify_ext.control "${data[@]}" Makefile LICENSE README.md debian/control debian/rules; do
		in_zip "$f" || missing+=("$f")
	done
	for f in "$TOP"/src/*.c "$TOP"/src/*.h; do
		in_zip "src/$(basename "$f")" || missing+=("src/$(basename "$f")")
	done
	tap "$zip has META.json, the control file, ${data[*]}, src/, debian/${missing[*]:+ (missing: ${missing[*]})}" \
		test "${#missing[@]}" -eq 0
	bad=$(grep -E '\.(o|so|bc|zip|deb)$' "$LOG/dist.list" || true)
	tap "$zip has no .o, .so, .bc${bad:+ (found: $(echo "$bad" | tr "\n" " "))}" test -z "$bad"
	outside=$(grep -v "^notify_ext-$UPSTREAM/" "$LOG/dist.list" || true)
	tap "every file of $zip is under notify_ext-$UPSTREAM/" test -z "$outside"
else
	tap "make dist" false
	show_log "$LOG/dist.log"
fi
rm -rf "$DIST"

# ----------------------------------------------------------------- build
step "build: dpkg-buildpackage -us -uc -b in $TOP"
arch=$(dpkg --print-architecture)
DEB=$SRC/${PKG}_${VERSION}_$arch.deb
if ! tap "dpkg-buildpackage -us -uc -b" logged "$LOG/build.log" \
	bash -c 'cd "$1" && dpkg-buildpackage -us -uc -b' _ "$TOP"; then
	show_log "$LOG/build.log" 120
	bail "the package did not build"
fi
warnings=$(grep -E '^[^ ]+:[0-9]+(:[0-9]+)?: warning:' "$LOG/build.log" || true)
tap "the build has no compiler warning" test -z "$warnings" || printf '%s\n' "$warnings" | sed 's/^/# /'
ran=$(grep -cE '^(test|     ) +[a-z_]+ +\.\.\. ok' "$LOG/build.log" || true)
tap "the build ran the pg_regress suites against debian/$PKG ($ran ok, ${#regress[@]} in REGRESS)" \
	test "$ran" -eq "${#regress[@]}"
tap "$(basename "$DEB") exists" test -s "$DEB" || bail "no package: $(ls "$SRC")"
field() { dpkg-deb -f "$DEB" "$1"; }
tap "package $(field Package) version $(field Version) architecture $(field Architecture)" \
	test "$(field Package)/$(field Version)/$(field Architecture)" = "$PKG/$VERSION/$arch"
tap "it depends on postgresql-$NE_PG_MAJOR (Depends: $(field Depends))" \
	grep -qE "(^|, )postgresql-$NE_PG_MAJOR( |,|$)" <<<"$(field Depends)"
dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >"$LOG/deb.list"
expected_files=("$PKGLIBDIR/notify_ext.so" "$SHAREDIR/extension/notify_ext.control")
for f in "${data[@]}"; do
	expected_files+=("$SHAREDIR/extension/$f")
done
missing=()
for f in "${expected_files[@]}"; do
	grep -qxF "$f" "$LOG/deb.list" || missing+=("$f")
done
tap "the .deb has notify_ext.so, the control file and the SQL scripts${missing[*]:+ (missing: ${missing[*]})}" \
	test "${#missing[@]}" -eq 0
tap "the .deb's notify_ext.so is not linked with libubsan (a normal build)" \
	bash -c 'dpkg-deb --fsys-tarfile "$1" | tar -xOf - ".$2" >"$3" && ! readelf -d "$3" | grep -q libubsan' \
	_ "$DEB" "$PKGLIBDIR/notify_ext.so" "$WORK/deb-notify_ext.so"

# --------------------------------------------------------------- install
step "install: dpkg -i $(basename "$DEB")"
if ne_pkg_installed "$PKG"; then
	installed_before=$(dpkg-query -W -f='${Version}' "$PKG")
	echo "# $PKG $installed_before is installed already: dpkg -i replaces it, and it stays installed"
else
	# keep what is at the package's paths now (a "make install"), to put it back
	while IFS= read -r f; do
		if [ -z "$f" ] || [ ! -f "$f" ] || [ -L "$f" ]; then
			continue
		fi
		mkdir -p "$WORK/backup$(dirname "$f")" && cp -p "$f" "$WORK/backup$f" && backups+=("$f")
	done < <(grep -v '/$' "$LOG/deb.list")
	echo "# saved ${#backups[@]} files that are at the package's paths now, to restore them afterwards"
fi
we_installed=$([ -z "$installed_before" ] && echo 1 || echo 0)
if ! tap "dpkg -i $(basename "$DEB")" logged "$LOG/dpkg.log" ne_sudo dpkg -i "$DEB"; then
	show_log "$LOG/dpkg.log"
	bail "the package did not install"
fi
tap "dpkg says $PKG $VERSION is installed" \
	test "$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$PKG")" = "installed $VERSION"
dpkg -L "$PKG" >"$LOG/dpkg-L.list"
missing=()
for f in "${expected_files[@]}"; do
	grep -qxF "$f" "$LOG/dpkg-L.list" || missing+=("$f")
done
tap "dpkg -L $PKG lists notify_ext.so, the control file and the SQL scripts${missing[*]:+ (missing: ${missing[*]})}" \
	test "${#missing[@]}" -eq 0
verify=$(dpkg --verify "$PKG" 2>&1)
tap "dpkg --verify $PKG: the files on disk are the package's${verify:+ ($verify)}" test -z "$verify"

# ----------------------------------------------------------------- check
step "check: a cluster on port $PORT with notify_ext preloaded, pg_regress from $REG"
mkdir -p "$REG"
cp -R "$TOP/sql" "$TOP/expected" "$REG/"
if ! (ne_start_cluster "$CLUSTER" "$PORT") >"$LOG/cluster.log" 2>&1; then
	tap "the cluster starts with shared_preload_libraries = 'notify_ext'" false
	show_log "$LOG/cluster.log"
	[ ! -f "$CLUSTER/log/postmaster.log" ] || show_log "$CLUSTER/log/postmaster.log" 40
else
	tap "the cluster starts with shared_preload_libraries = 'notify_ext'" true
	export PGHOST=$CLUSTER PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
	# the postmaster preloaded the module: it must be the packaged file
	so=$PKGLIBDIR/notify_ext.so
	pm=$(head -n 1 "$CLUSTER/data/postmaster.pid")
	ino=$(stat -c %i "$so")
	tap "the postmaster (pid $pm) has mapped the installed $so (inode $ino)" \
		awk -v f="$so" -v i="$ino" '$6 == f && $5 == i && $7 == "" { found = 1 } END { exit !found }' "/proc/$pm/maps"
	tap "no src/, Makefile or build products in $REG" \
		test ! -e "$REG/src" -a ! -e "$REG/Makefile" -a -z "$(find "$REG" -name '*.o' -o -name '*.so')"
	psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
	# a database set up as pg_regress does (it does not with --use-existing)
	if psql_q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS contrib_regression WITH (FORCE)" \
		-c "CREATE DATABASE contrib_regression TEMPLATE = template0" \
		-c "ALTER DATABASE contrib_regression SET lc_messages TO 'C'" \
		-c "ALTER DATABASE contrib_regression SET lc_monetary TO 'C'" \
		-c "ALTER DATABASE contrib_regression SET lc_numeric TO 'C'" \
		-c "ALTER DATABASE contrib_regression SET lc_time TO 'C'" \
		-c "ALTER DATABASE contrib_regression SET bytea_output TO 'hex'" \
		-c "ALTER DATABASE contrib_regression SET timezone_abbreviations TO 'Default'" \
		>"$LOG/regress-db.log" 2>&1; then
		rc=0
		(cd "$REG" && "$NE_PG_REGRESS" --inputdir=. --outputdir="$REG/out" --use-existing \
			--dbname=contrib_regression --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
			"${regress[@]}") >"$LOG/regress.log" 2>&1 || rc=$?
		for t in "${regress[@]}"; do
			tap "pg_regress $t (installed files)" grep -qE "^(test| ) *$t +\.\.\. ok" "$LOG/regress.log"
		done
		tap "pg_regress exit status $rc" test "$rc" -eq 0
		if [ "$rc" -ne 0 ]; then
			show_log "$LOG/regress.log" 30
			[ ! -s "$REG/out/regression.diffs" ] || show_log "$REG/out/regression.diffs" 120
		fi
	else
		tap "create the database contrib_regression" false
		show_log "$LOG/regress-db.log"
	fi
	# the update path with the packaged scripts: 1.0, then ALTER EXTENSION UPDATE
	if [ -x "$TOP/test/upgrade/run.sh" ]; then
		if ! tap "test/upgrade/run.sh: 1.0 + ALTER EXTENSION UPDATE equals a fresh install (packaged scripts)" \
			logged "$LOG/upgrade.log" "$TOP/test/upgrade/run.sh"; then
			grep -E '^not ok' "$LOG/upgrade.log" | sed 's/^/# /'
			show_log "$LOG/upgrade.log" 40
		fi
	fi
	# the package's autopkgtest, as autopkgtest runs it: from the source tree,
	# against the installed package, in a pg_virtualenv cluster of its own
	if [ -x "$TOP/debian/tests/installcheck" ]; then
		if ! tap "debian/tests/installcheck (autopkgtest) against the installed package" \
			logged "$LOG/autopkgtest.log" env -C "$TOP" debian/tests/installcheck; then
			show_log "$LOG/autopkgtest.log" 60
		fi
	fi
	# a "make install" meanwhile (another user of this machine) would have
	# replaced them: then the results above are not the package's
	verify=$(dpkg --verify "$PKG" 2>&1)
	tap "dpkg --verify $PKG after the checks: still the package's files${verify:+ (replaced meanwhile: $verify)}" \
		test -z "$verify"
	bad=$(grep -nE 'PANIC:|TRAP:|terminated by signal|server process .* exited with' \
		"$CLUSTER/log/postmaster.log" || true)
	tap "the server log shows no crash" test -z "$bad" || printf '%s\n' "$bad" | head -n 20 | sed 's/^/# /'
	ne_stop_cluster "$CLUSTER" >/dev/null
fi

# ---------------------------------------------------------------- remove
if [ -z "$installed_before" ]; then
	step "remove: dpkg -r $PKG (it was not installed before), restore the ${#backups[@]} previous files"
	if ! tap "dpkg -r $PKG, previous files restored" remove_package; then
		show_log "$LOG/dpkg.log"
	fi
	tap "$PKG is no longer installed" bash -c '! dpkg-query -W -f="\${db:Status-Status}" "$1" 2>/dev/null | grep -qx installed' _ "$PKG"
	changed=()
	for f in "${backups[@]}"; do
		cmp -s "$WORK/backup$f" "$f" || changed+=("$f")
	done
	tap "the ${#backups[@]} files at the package's paths are as before${changed[*]:+ (differ: ${changed[*]})}" \
		test "${#changed[@]}" -eq 0
else
	step "remove: skipped ($PKG $installed_before was installed before this run: now $VERSION)"
fi

finish
