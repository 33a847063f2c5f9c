# shellcheck shell=bash
#
# scripts/lib.sh: helpers shared by scripts/test.sh, scripts/demo.sh and
# .ci/run.  Source it; it defines functions and a few variables only.
#
#   ne_install_deps [extra packages...]   apt-get install what is missing
#   ne_build_install                      make clean && make (no warnings) && make install
#   ne_start_cluster DIR PORT [conf...]   initdb DIR (if new), start it, export PG* vars
#   ne_stop_cluster DIR                   stop the cluster in DIR (if running)
#
# Server processes run as the "postgres" OS user when we are root
# (PostgreSQL refuses to run as root), else as the current user.

NE_PG_MAJOR=15
NE_PG_BIN=/usr/lib/postgresql/$NE_PG_MAJOR/bin
NE_PG_CONFIG=$NE_PG_BIN/pg_config
NE_PGXS_DIR=/usr/lib/postgresql/$NE_PG_MAJOR/lib/pgxs
NE_PG_REGRESS=$NE_PGXS_DIR/src/test/regress/pg_regress
NE_PG_ISOLATION_REGRESS=$NE_PGXS_DIR/src/test/isolation/pg_isolation_regress
# Debian's own python3 (it is the one python3-psycopg installs into), not
# whatever python3 comes first in PATH.
NE_PYTHON=${NE_PYTHON:-/usr/bin/python3}

# The checkout's top directory (this file lives in scripts/).
NE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Packages needed to build, install and test.
NE_DEPS=(
	postgresql-$NE_PG_MAJOR
	postgresql-server-dev-$NE_PG_MAJOR
	libkrb5-dev
	libpq-dev
	gcc
	make
	postgresql-$NE_PG_MAJOR-pgtap
	libtap-parser-sourcehandler-pgtap-perl # pg_prove
	python3-psycopg
)

ne_log() { printf '==> %s\n' "$*"; }
ne_warn() { printf 'WARNING: %s\n' "$*" >&2; }
ne_die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

ne_is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root (directly when we are root, else through sudo).
ne_sudo() {
	if ne_is_root; then
		"$@"
	else
		command -v sudo >/dev/null || ne_die "not root and sudo is missing: cannot run '$*'"
		sudo "$@"
	fi
}

# Run a command as the user that owns the server processes.  From /, so
# that a current directory postgres cannot enter does not matter.
ne_as_pg() {
	if ne_is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# ne_install_deps [extra packages...]: install the missing packages of
# NE_DEPS plus the extra ones; no apt-get at all when nothing is missing.
ne_install_deps() {
	local pkg missing=()
	for pkg in "${NE_DEPS[@]}" "$@"; do
		if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
			missing+=("$pkg")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		ne_log "dependencies: all installed"
		return 0
	fi
	command -v apt-get >/dev/null || ne_die "missing packages (${missing[*]}) and no apt-get: this needs Debian 12"
	ne_log "dependencies: installing ${missing[*]}"
	ne_sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3 update
	ne_sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Acquire::Retries=3 \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		install --no-install-recommends "${missing[@]}"
	for pkg in "${missing[@]}"; do
		dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
			ne_die "package $pkg is still not installed"
	done
}

# ne_build_install: clean build with PGXS, failing on any compiler warning,
# then install into PostgreSQL 15's directories.
ne_build_install() {
	local log
	[ -x "$NE_PG_CONFIG" ] || ne_die "$NE_PG_CONFIG not found (postgresql-server-dev-$NE_PG_MAJOR)"
	log=$(mktemp "${TMPDIR:-/tmp}/notify_ext-build.XXXXXX")
	ne_log "build: make clean && make (PG_CONFIG=$NE_PG_CONFIG)"
	if ! (cd "$NE_ROOT" && make -s clean PG_CONFIG="$NE_PG_CONFIG" >/dev/null &&
		make PG_CONFIG="$NE_PG_CONFIG") >"$log" 2>&1; then
		cat "$log"
		rm -f "$log"
		ne_die "build failed"
	fi
	if grep -q 'warning:' "$log"; then
		grep -B2 -A6 'warning:' "$log" >&2
		rm -f "$log"
		ne_die "build produced compiler warnings (see above); the build must be warning-free"
	fi
	rm -f "$log"
	ne_log "build: ok, no warnings; make install"
	(cd "$NE_ROOT" && ne_sudo make -s install PG_CONFIG="$NE_PG_CONFIG" >/dev/null) ||
		ne_die "make install failed"
}

# ne_start_cluster DIR PORT [postgresql.conf lines...]
#
# DIR is the data directory; it is created (or must be empty) and
# initialised with initdb unless it already holds a cluster.  The server
# listens only on a Unix socket in DIR (or in $NE_SOCKDIR when set, for
# paths too long for a socket), logs to DIR/log/postmaster.log, and has
# notify_ext preloaded; extra lines are appended to postgresql.conf after
# ours, so they win (e.g. "shared_preload_libraries = ''").  Exports
# PGHOST, PGPORT, PGUSER=postgres and PGDATABASE=postgres.
ne_start_cluster() {
	local dir=${1:?ne_start_cluster: DIR missing} port=${2:?ne_start_cluster: PORT missing}
	shift 2
	local sockdir=${NE_SOCKDIR:-$dir} line
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ -n "${NE_SOCKDIR:-}" ] || sockdir=$dir
	if ne_is_root; then
		chown postgres:postgres "$dir"
		chmod 700 "$dir"
		mkdir -p "$sockdir"
		[ "$sockdir" = "$dir" ] || chown postgres:postgres "$sockdir"
		ne_as_pg test -x "$dir" ||
			ne_die "the postgres user cannot reach $dir (a parent directory is not searchable)"
	fi
	if [ ! -f "$dir/PG_VERSION" ]; then
		ne_log "cluster: initdb $dir"
		ne_as_pg "$NE_PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C \
			--no-sync >"${TMPDIR:-/tmp}/notify_ext-initdb.$$.log" 2>&1 || {
			cat "${TMPDIR:-/tmp}/notify_ext-initdb.$$.log" >&2
			rm -f "${TMPDIR:-/tmp}/notify_ext-initdb.$$.log"
			ne_die "initdb failed for $dir"
		}
		rm -f "${TMPDIR:-/tmp}/notify_ext-initdb.$$.log"
		{
			echo
			echo "# added by scripts/lib.sh (notify_ext)"
			echo "listen_addresses = ''"
			echo "port = $port"
			echo "unix_socket_directories = '$sockdir'"
			echo "shared_preload_libraries = 'notify_ext'"
			echo "log_line_prefix = '%m [%p] %q%u@%d '"
			for line in "$@"; do
				echo "$line"
			done
		} >>"$dir/postgresql.conf"
		mkdir -p "$dir/log"
		if ne_is_root; then chown -R postgres:postgres "$dir/log"; fi
	fi
	export PGHOST=$sockdir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
	if ne_as_pg "$NE_PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
		ne_log "cluster: already running in $dir"
		return 0
	fi
	ne_log "cluster: starting $dir (socket $sockdir, port $port)"
	if ! ne_as_pg "$NE_PG_BIN/pg_ctl" -D "$dir" -l "$dir/log/postmaster.log" -w -t 120 start >/dev/null; then
		tail -n 40 "$dir/log/postmaster.log" >&2 || true
		ne_die "the server in $dir did not start (log above)"
	fi
}

# ne_stop_cluster DIR: stop the server of DIR if one is running.
ne_stop_cluster() {
	local dir=${1:?ne_stop_cluster: DIR missing}
	[ -f "$dir/postmaster.pid" ] || return 0
	ne_log "cluster: stopping $dir"
	ne_as_pg "$NE_PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 120 stop >/dev/null ||
		ne_warn "could not stop the server in $dir"
}
