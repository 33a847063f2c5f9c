# shellcheck shell=bash
# shellcheck disable=SC2034 # variables are for the scripts that source this file
#
# scripts/lib.sh: helpers shared by scripts/test.sh, scripts/demo.sh,
# bench/run.sh and .ci/run.  Source it; it only defines functions and
# variables.
#
#   ne_install_deps [extra packages...]   install what the build and tests need (if missing)
#   ne_apt PACKAGES...                    install those of PACKAGES that are missing
#   ne_build_install                      make clean && make (warning-free) && make install
#   ne_start_cluster DIR PORT [conf...]   initdb DIR/data if new, start it, export PG* vars
#   ne_stop_cluster DIR                   stop the cluster of DIR, if it runs
#   ne_pguser CMD...                      run CMD as the owner of the server processes
#
# NE_SANITIZE=undefined (environment): ne_build_install compiles and links
# notify_ext.so with UndefinedBehaviorSanitizer (NE_UBSAN_COPT; the module
# then depends on libubsan.so, which is checked, so it loads into Debian's
# uninstrumented postgres), and ne_start_cluster starts the server with
# UBSAN_OPTIONS (default NE_UBSAN_OPTIONS: stack traces, carry on after a
# report; the same options are also built into the module, see
# ne_build_install).  Reports go to the server's stderr, i.e. to
# DIR/log/postmaster.log, as "FILE:LINE:COL: runtime error: ..." and a
# stack; scripts/test.sh fails on any.
# Without NE_SANITIZE, ne_build_install checks that the installed module
# is not linked with libubsan (the normal build is back).
#
# A cluster directory DIR holds the data directory DIR/data, the server's
# Unix socket (DIR/.s.PGSQL.PORT) and its log (DIR/log/postmaster.log).
# Server processes run as the "postgres" OS user when we are root
# (PostgreSQL refuses to run as root), else as the current user.

NE_PG_MAJOR=15
NE_PGBIN=/usr/lib/postgresql/$NE_PG_MAJOR/bin
PG_CONFIG=$NE_PGBIN/pg_config # always PostgreSQL 15
NE_PGXS_DIR=/usr/lib/postgresql/$NE_PG_MAJOR/lib/pgxs
NE_PG_REGRESS=$NE_PGXS_DIR/src/test/regress/pg_regress
NE_PG_ISOLATION_REGRESS=$NE_PGXS_DIR/src/test/isolation/pg_isolation_regress
# Debian's own python3 (python3-psycopg installs into it), whatever python3
# comes first in PATH.
NE_PYTHON=${NE_PYTHON:-/usr/bin/python3}
# Client programs of PostgreSQL 15 first in PATH (psql, pg_prove's psql).
case ":$PATH:" in
*":$NE_PGBIN:"*) ;;
*) PATH=$NE_PGBIN:$PATH ;;
esac
export PATH PG_CONFIG

# The checkout's top directory (this file is in scripts/).
NE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building, installing and testing need.
NE_DEPS=(
	"postgresql-$NE_PG_MAJOR"               # server, contrib (dblink), pgbench
	"postgresql-server-dev-$NE_PG_MAJOR"    # PGXS, pg_regress, pg_isolation_regress
	libkrb5-dev                             # needed by the server headers
	libpq-dev                               # libpq-fe.h for test/client
	gcc
	make
	"postgresql-$NE_PG_MAJOR-pgtap"         # pgTAP
	libtap-parser-sourcehandler-pgtap-perl  # pg_prove
	python3-psycopg                         # psycopg 3, for test/client and test/stress
	gdb                                     # test/client/test_wakeup_race.py (D2)
)

# NE_SANITIZE: see the header.  -fwrapv (PostgreSQL's CFLAGS) makes signed
# overflow defined, so UBSan does not check it; everything else of
# -fsanitize=undefined is checked, plus float-to-integer overflow.
NE_SANITIZE=${NE_SANITIZE:-}
NE_UBSAN_COPT="-fsanitize=undefined -fsanitize=float-cast-overflow -fno-omit-frame-pointer"
NE_UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:report_error_type=1"

ne_say() { printf '\n==> %s\n' "$*"; }
ne_log() { printf '==> %s\n' "$*"; }
ne_warn() { printf 'WARNING: %s\n' "$*" >&2; }
ne_die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

ne_is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly when we are root, else with sudo.
ne_sudo() {
	if ne_is_root; then
		"$@"
	else
		command -v sudo >/dev/null || ne_die "not root and no sudo: cannot run '$*'"
		sudo "$@"
	fi
}

# Run a command as the owner of the server processes, from /, so that a
# current directory postgres may not enter does not matter.
ne_pguser() {
	if ne_is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

ne_pkg_installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# ne_apt PACKAGES...: apt-get install those that are missing; no apt-get
# at all when none is.  Works on a fresh machine with empty package lists.
# apt-get's output goes to a log file, shown (its end) only on failure; one
# progress line per step.  Installing postgresql-15 makes Debian create its
# own cluster 15/main (port 5432): it is left alone, and said so.
ne_apt() {
	local pkg missing=() log t0 new_pg=0 main port status sudo=""
	for pkg in "$@"; do
		ne_pkg_installed "$pkg" || missing+=("$pkg")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi
	command -v apt-get >/dev/null ||
		ne_die "missing packages (${missing[*]}) and no apt-get: this needs Debian 12"
	[[ " ${missing[*]} " != *" postgresql-$NE_PG_MAJOR "* ]] || new_pg=1
	log=$(mktemp "${TMPDIR:-/tmp}/notify_ext-apt.XXXXXX")
	t0=$SECONDS
	ne_log "installing with apt-get (a few minutes on a fresh machine): ${missing[*]}"
	printf '    %s\n' "apt-get's output goes to $log (shown if it fails)"
	ne_log "apt-get update"
	ne_sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3 update >>"$log" 2>&1 ||
		ne_apt_failed "$log" "apt-get update failed"
	ne_log "apt-get install"
	ne_sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Acquire::Retries=3 \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		install --no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
		ne_apt_failed "$log" "apt-get install ${missing[*]} failed"
	for pkg in "${missing[@]}"; do
		ne_pkg_installed "$pkg" || ne_apt_failed "$log" "package $pkg is still not installed"
	done
	rm -f "$log"
	ne_log "apt-get: done in $((SECONDS - t0)) s"
	if [ "$new_pg" = 1 ] && main=$(pg_lsclusters -h "$NE_PG_MAJOR" main 2>/dev/null) && [ -n "$main" ]; then
		read -r _ _ port status _ <<<"$main"
		ne_is_root || sudo="sudo "
		ne_log "note: installing postgresql-$NE_PG_MAJOR made Debian create its default cluster $NE_PG_MAJOR/main"
		printf '    %s\n' "(port $port, $status now; Debian's postgresql service starts it at boot)." \
			"notify_ext's scripts neither use nor change it (they run clusters of their own)." \
			"Stop it: ${sudo}pg_ctlcluster $NE_PG_MAJOR main stop; remove it: ${sudo}pg_dropcluster --stop $NE_PG_MAJOR main"
	fi
}

# ne_apt_failed LOG MESSAGE: the end of apt-get's output, then die
ne_apt_failed() {
	printf '%s\n' "---- last 60 lines of $1 (apt-get's output)" >&2
	tail -n 60 "$1" >&2
	printf '%s\n' "---- end of $1" >&2
	ne_die "$2 (apt-get's full output: $1)"
}

# ne_install_deps [extra packages...]
ne_install_deps() {
	ne_apt "${NE_DEPS[@]}" "$@"
	ne_log "dependencies installed: ${NE_DEPS[*]}${*:+ $*}"
}

# ne_build_install: a clean PGXS build that fails on any compiler warning,
# then make install into PostgreSQL 15's directories (with sudo if needed).
ne_build_install() {
	local log copt="" so optdir="" ldflags="" t0
	[ -x "$PG_CONFIG" ] || ne_die "$PG_CONFIG not found (package postgresql-server-dev-$NE_PG_MAJOR)"
	case $NE_SANITIZE in
	"") ;;
	undefined) copt=$NE_UBSAN_COPT ;;
	*) ne_die "NE_SANITIZE=$NE_SANITIZE: only NE_SANITIZE=undefined is supported" ;;
	esac
	if [ -n "$copt" ]; then
		# UBSan reads UBSAN_OPTIONS from /proc/self/environ when it reports
		# first, and a backend's process title (init_ps_display) has zeroed
		# that by then: the options are built in too, as the runtime's
		# __ubsan_default_options() (a readable UBSAN_OPTIONS still wins)
		optdir=$(mktemp -d "${TMPDIR:-/tmp}/notify_ext-ubsan.XXXXXX")
		printf '%s\n' "/* scripts/lib.sh, NE_SANITIZE builds only */" \
			"const char *__ubsan_default_options(void) __attribute__((visibility(\"default\")));" \
			"const char *__ubsan_default_options(void) { return \"$NE_UBSAN_OPTIONS\"; }" \
			>"$optdir/ubsan_defaults.c"
		gcc -fPIC -O2 -Wall -Wextra -Werror -c -o "$optdir/ubsan_defaults.o" "$optdir/ubsan_defaults.c" ||
			ne_die "could not compile $optdir/ubsan_defaults.c"
		ldflags=$optdir/ubsan_defaults.o
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/notify_ext-build.XXXXXX")
	t0=$SECONDS
	ne_log "building: make clean && make (PG_CONFIG=$PG_CONFIG${copt:+ COPT=$copt PG_LDFLAGS=$ldflags})"
	if ! (cd "$NE_ROOT" && make -s clean PG_CONFIG="$PG_CONFIG" &&
		make PG_CONFIG="$PG_CONFIG" ${copt:+"COPT=$copt" "PG_LDFLAGS=$ldflags"}) >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		[ -z "$optdir" ] || rm -rf "$optdir"
		ne_die "the build failed (output above)"
	fi
	[ -z "$optdir" ] || rm -rf "$optdir"
	if grep -q 'warning:' "$log"; then
		grep -B3 -A8 'warning:' "$log" >&2
		rm -f "$log"
		ne_die "the build has compiler warnings (above); it must be warning-free"
	fi
	rm -f "$log"
	ne_log "build: ok in $((SECONDS - t0)) s, no compiler warnings; installing into $("$PG_CONFIG" --pkglibdir)"
	# install(1) overwrites an existing file in place (same inode), and every
	# running server that has the old module mapped would then crash: remove
	# it first, so that running servers keep theirs and the new one is a new file
	so=$("$PG_CONFIG" --pkglibdir)/notify_ext.so
	ne_sudo rm -f "$so"
	(cd "$NE_ROOT" && ne_sudo make -s install PG_CONFIG="$PG_CONFIG" >/dev/null) ||
		ne_die "make install failed"
	if [ -n "$copt" ]; then
		# (the listings are read whole into a variable: grep -q at the end of
		# a pipe exits at the first match, and under pipefail the writer's
		# SIGPIPE then fails the check once the listing outgrows the pipe)
		local libs syms
		libs=$(ldd "$so")
		syms=$(nm -D --defined-only "$so")
		grep -q 'libubsan\.so' <<<"$libs" ||
			ne_die "$so is not linked with libubsan (NE_SANITIZE=$NE_SANITIZE): ldd says $(tr -s '\n\t' '  ' <<<"$libs")"
		grep -q ' __ubsan_default_options$' <<<"$syms" ||
			ne_die "$so does not export __ubsan_default_options"
		ne_log "installed $so with UBSan ($(grep -o -m1 'libubsan[^ ]*' <<<"$libs"))"
	elif grep -q 'libubsan\.so' <<<"$(ldd "$so")"; then
		ne_die "$so is still linked with libubsan after a normal build"
	fi
}

# ne_start_cluster DIR PORT [postgresql.conf lines...]
#
# Initialises DIR/data unless it holds a cluster already, and starts it.
# The server listens only on a Unix socket in DIR (listen_addresses = ''),
# with trust authentication, notify_ext preloaded, fsync and
# synchronous_commit at their defaults, and logs to DIR/log/postmaster.log.
# Extra lines go to postgresql.conf after ours, so they win (for instance
# "shared_preload_libraries = ''").  Exports PGHOST=DIR PGPORT=PORT
# PGUSER=postgres PGDATABASE=postgres.  A Unix socket path has at most 107
# bytes: keep DIR short (a mktemp directory in /tmp is).
# As root, DIR itself (the cluster's directory, which the caller creates or
# names) is given to the postgres user; no other directory changes owner or
# mode: if postgres cannot reach DIR (a parent such as a mode-700 home
# directory), it fails and says so, and never opens a parent directory up.
ne_start_cluster() {
	local dir=${1:?ne_start_cluster: DIR missing} port=${2:?ne_start_cluster: PORT missing}
	shift 2
	local line data
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	data=$dir/data
	[ ${#dir} -le 90 ] || ne_die "cluster directory path too long for a Unix socket: $dir"
	if ne_is_root; then
		if [ "$(stat -c %U "$dir")" != postgres ]; then
			chown postgres:postgres "$dir"
			chmod 755 "$dir"
		fi
		ne_pguser test -x "$dir" -a -w "$dir" ||
			ne_die "the postgres user cannot reach $dir: a parent directory is not searchable by others (a home directory such as /root?); use a directory under /tmp (parents' permissions are left as they are)"
	fi
	if [ ! -f "$data/PG_VERSION" ]; then
		ne_log "initdb $data"
		mkdir -p "$dir/log"
		if ne_is_root; then chown postgres:postgres "$dir/log"; fi
		if ! ne_pguser "$NE_PGBIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
			--locale=C --no-sync >"$dir/log/initdb.log" 2>&1; then
			cat "$dir/log/initdb.log" >&2
			ne_die "initdb failed for $data"
		fi
		{
			echo
			echo "# added by scripts/lib.sh (notify_ext)"
			echo "listen_addresses = ''"
			echo "port = $port"
			echo "unix_socket_directories = '$dir'"
			echo "shared_preload_libraries = 'notify_ext'"
			echo "log_line_prefix = '%m [%p] %q%u@%d '"
			for line in "$@"; do
				echo "$line"
			done
		} >>"$data/postgresql.conf"
	fi
	mkdir -p "$dir/log"
	if ne_is_root; then chown postgres:postgres "$dir/log"; fi
	export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
	if ne_pguser "$NE_PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		ne_log "the cluster in $dir is already running"
		return 0
	fi
	ne_log "starting the cluster in $dir (port $port)${NE_SANITIZE:+ (NE_SANITIZE=$NE_SANITIZE)}"
	# with NE_SANITIZE, the postmaster (and so every backend) gets UBSAN_OPTIONS;
	# -p: PORT, even if DIR was initialised with another one
	if ! ne_pguser env ${NE_SANITIZE:+"UBSAN_OPTIONS=${UBSAN_OPTIONS:-$NE_UBSAN_OPTIONS}"} \
		"$NE_PGBIN/pg_ctl" -D "$data" -l "$dir/log/postmaster.log" -w -t 120 \
		-o "-p $port" start >/dev/null; then
		tail -n 40 "$dir/log/postmaster.log" >&2 || true
		ne_die "the server in $dir did not start (log above)"
	fi
}

# ne_stop_cluster DIR: stop the server of DIR/data if one is running.
ne_stop_cluster() {
	local dir=${1:?ne_stop_cluster: DIR missing}
	[ -f "$dir/data/postmaster.pid" ] || return 0
	ne_log "stopping the cluster in $dir"
	ne_pguser "$NE_PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 120 stop >/dev/null ||
		ne_warn "could not stop the server in $dir"
}
