# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts share (sourced, after
# scripts/lib.sh where they use both).
#
#   ne_bench_options DEFAULT_PORT "$@"
#       the options of a section script: --quick, --md FILE, --port N,
#       --no-build, --keep, -h; sets QUICK MD PORT BUILD KEEP
#   kv FILE KEY        the value of KEY in a key=value file (bench/listener.c's output)
#   alive PID          running (a zombie left for `wait` counts as gone)
#   proc_jiffies PIDS  utime + stime + cutime + cstime (clock ticks) of the
#                      processes and of their live children

ne_bench_options() {
	QUICK=0 MD="" PORT=$1 BUILD=1 KEEP=0
	shift
	while [ $# -gt 0 ]; do
		case $1 in
			--quick) QUICK=1 ;;
			--md) MD=$2; shift ;;
			--port) PORT=$2; shift ;;
			--no-build) BUILD=0 ;;
			--keep) KEEP=1 ;;
			# the script's opening comment
			-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "$0"; exit 0 ;;
			*) echo "$(basename "$0"): unknown argument $1" >&2; exit 2 ;;
		esac
		shift
	done
}

kv() { awk -F= -v k="$2" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$1"; }

alive() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

proc_jiffies() {
	local p t=0 j
	for p in "$@" $(ps -o pid= --ppid "$(echo "$@" | tr ' ' ',')" 2>/dev/null); do
		j=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }')
		t=$(( t + ${j:-0} ))
	done
	echo "$t"
}
