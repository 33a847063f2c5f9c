# bench/report.sh -- sourced by bench/run.sh at the end: turns the raw
# tab-separated results ($W1..$W6, columns as written by run.sh) into
# $OUT/results.md, the PNG plots, and the tables printed on stdout.
#
# Absolute numbers are medians over the repetitions.  Ratios are medians of
# per-repetition ratios: in each repetition the variants ran back to back,
# so a ratio compares runs seconds apart and the machine's drift over the
# whole run cancels out; the range of the per-repetition ratios follows in
# parentheses.

# stat FILE CONDITION COLUMN -> "median min max" (or "nan nan nan")
stat() {
	awk -F'\t' "($2) { a[++k] = \$$3 + 0 }
	END {
		if (k == 0) { print \"nan nan nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		print m, a[1], a[k]
	}" "$1"
}
# pratio FILE NUM-CONDITION DEN-CONDITION REP-COLUMN VALUE-COLUMN -> "median min max"
pratio() {
	awk -F'\t' "($2) { n[\$$4] = \$$5 } ($3) { d[\$$4] = \$$5 }
	END {
		for (r in n) if ((r in d) && d[r] + 0 > 0) a[++k] = n[r] / d[r]
		if (k == 0) { print \"nan nan nan\"; exit }
		for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		print m, a[1], a[k]
	}" "$1"
}
first() { echo "${1%% *}"; }
med() { first "$(stat "$@")"; }
maxof() { awk -F'\t' "($2) { if (!n++ || \$$3 + 0 > m) m = \$$3 + 0 } END { print m + 0 }" "$1"; }
# "m lo hi" -> "1.23 (1.10-1.30)"
fr() {
	awk -v s="$1" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") print "n/a"
		else if (sprintf("%.2f", a[2]) == sprintf("%.2f", a[3])) printf "%.2f", a[1]
		else printf "%.2f (%.2f–%.2f)", a[1], a[2], a[3] }'
}
# "m lo hi" of a ratio -> loss "5.3% (-2.0%–9.9%)"
floss() {
	awk -v s="$1" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") print "n/a"
		else printf "%.1f%% (%.1f%%–%.1f%%)", 100 * (1 - a[1]), 100 * (1 - a[3]), 100 * (1 - a[2]) }'
}
# verdict on "m lo hi" of a ratio that should be >= 1 (ge) or <= 1 (le):
# ok when the median meets it; noise when the median misses but the range of
# per-repetition ratios includes 1 (no difference this run can tell apart);
# WORSE when every repetition misses.
judge() {	# "m lo hi" ge|le [threshold, default 1]
	awk -v s="$1" -v dir="$2" -v t="${3:-1}" 'BEGIN { split(s, a, " ")
		if (a[1] == "nan") { print "WORSE"; exit }
		if (dir == "ge") print (a[1] >= t ? "ok" : (a[3] >= t ? "noise" : "WORSE"))
		else print (a[1] <= t ? "ok" : (a[2] <= t ? "noise" : "WORSE")) }'
}
# overall verdict from the words of judge
overall() {
	case " $* " in
		*" WORSE "*) echo FAILS ;;
		*" noise "*) echo "HOLDS within noise" ;;
		*) echo HOLDS ;;
	esac
}
fmt0() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "") print "n/a"; else printf "%.0f", a }'; }
ms() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "" || a < 0) print "n/a"; else printf "%.1f", a / 1000 }'; }
mb() { awk -v a="$1" 'BEGIN { if (a == "nan" || a == "") print "n/a"; else printf "%.1f", a / 1024 }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && a + 0 >= b + 0) }'; }

# delivered == committed in every run?  prints "yes" or "no (delivered of committed)"
delivery_check() {	# FILE CONDITION COMMITTED-COL DELIVERED-COL
	awk -F'\t' "($2) { p += \$$3; d += \$$4; if (\$$3 != \$$4) bad++ } END {
		if (bad) printf \"no (%d of %d)\", d, p; else print \"yes\" }" "$1"
}
# sum of a column per variant -> "core N, notify_ext M" (empty if all zero)
warn_sum() {	# FILE VARIANT-COL WARN-COL
	awk -F'\t' "{ w[\$$2] += \$$3; t += \$$3 } END { if (t) printf \"core %d, notify_ext %d\", w[\"core\"], w[\"ext\"] }" "$1"
}

TABLES=$RUN/tables.md
TARGETS=$RUN/targets.md
: >"$TABLES"
VERDICTS=()
WARN_NOTE='"NOTIFY queue is N% full" warnings received by the clients in these runs'
other_note() {	# WORKLOAD
	local o=${OTHER_CPU[$1]:-}
	[ -z "$o" ] || { echo; echo "Other processes on the machine used $o% of its CPU time during this workload."; } >>"$TABLES"
}

# ------------------------------------------------------------------ 1
{
	echo "### 1. Commit throughput: \`BEGIN; INSERT one row; notify; COMMIT\` (tps)"
	echo
	echo "pgbench -M prepared, ${T_COMMIT} s per run, $REPS repetitions; one listener draining the channel."
	echo
	echo "| clients | no notify | core | notify_ext | ext/core | ext/no-notify | core/no-notify | all delivered (core, ext) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---|"
} >>"$TABLES"
: >"$RUN/throughput.dat"
T1_J=""
T1_TXT=""
for c in $CLIENTS; do
	sn=$(stat "$W1" "\$1 == $c && \$2 == \"none\"" 4)
	sc=$(stat "$W1" "\$1 == $c && \$2 == \"core\"" 4)
	se=$(stat "$W1" "\$1 == $c && \$2 == \"ext\"" 4)
	rec=$(pratio "$W1" "\$1 == $c && \$2 == \"ext\"" "\$1 == $c && \$2 == \"core\"" 3 4)
	ren=$(pratio "$W1" "\$1 == $c && \$2 == \"ext\"" "\$1 == $c && \$2 == \"none\"" 3 4)
	rcn=$(pratio "$W1" "\$1 == $c && \$2 == \"core\"" "\$1 == $c && \$2 == \"none\"" 3 4)
	dc=$(delivery_check "$W1" "\$1 == $c && \$2 == \"core\"" 5 6)
	de=$(delivery_check "$W1" "\$1 == $c && \$2 == \"ext\"" 5 6)
	echo "| $c | $(fmt0 "$(first "$sn")") | $(fmt0 "$(first "$sc")") | $(fmt0 "$(first "$se")") | $(fr "$rec") | $(fr "$ren") | $(fr "$rcn") | $dc, $de |" >>"$TABLES"
	echo "$c $sn $sc $se" >>"$RUN/throughput.dat"
	j=$(judge "$rec" ge)
	T1_J="$T1_J $j"
	T1_TXT="$T1_TXT $c client$([ "$c" = 1 ] || echo s) $(fr "$rec") $j,"
done
w=$(warn_sum "$W1" 2 7)
[ -z "$w" ] || { echo; echo "$WARN_NOTE: $w."; } >>"$TABLES"
other_note 1
echo >>"$TABLES"
VERDICTS+=("$(overall $T1_J) | commit throughput no worse than core at every client count | ext/core:${T1_TXT%,}")

# ------------------------------------------------------------------ 2
{
	echo "### 2. Thundering herd: autocommit notify on \`c\`, 2 clients, idle listeners on other channels (tps)"
	echo
	echo "pgbench -M prepared, ${T_HERD} s per run, $REPS repetitions, each going through every herd size;"
	echo "one listener draining \`c\`; each idle connection LISTENs and ext_listens a channel of its own"
	echo "and keeps reading its socket. Loss = 1 - tps / tps without idle listeners in the same repetition."
	echo
	echo "| idle listeners | core | notify_ext | ext/core | core loss | notify_ext loss | all delivered (core, ext) |"
	echo "|---:|---:|---:|---:|---:|---:|---|"
} >>"$TABLES"
: >"$RUN/herd.dat"
H0=$(echo "$HERD" | awk '{ print $1 }')
HMAX=$(echo "$HERD" | awk '{ print $NF }')
for h in $HERD; do
	sc=$(stat "$W2" "\$1 == $h && \$2 == \"core\"" 4)
	se=$(stat "$W2" "\$1 == $h && \$2 == \"ext\"" 4)
	rec=$(pratio "$W2" "\$1 == $h && \$2 == \"ext\"" "\$1 == $h && \$2 == \"core\"" 3 4)
	lc=$(pratio "$W2" "\$1 == $h && \$2 == \"core\"" "\$1 == $H0 && \$2 == \"core\"" 3 4)
	le=$(pratio "$W2" "\$1 == $h && \$2 == \"ext\"" "\$1 == $H0 && \$2 == \"ext\"" 3 4)
	dc=$(delivery_check "$W2" "\$1 == $h && \$2 == \"core\"" 5 6)
	de=$(delivery_check "$W2" "\$1 == $h && \$2 == \"ext\"" 5 6)
	if [ "$h" = "$H0" ]; then lcs="-"; les="-"; else lcs=$(floss "$lc"); les=$(floss "$le"); fi
	echo "| $h | $(fmt0 "$(first "$sc")") | $(fmt0 "$(first "$se")") | $(fr "$rec") | $lcs | $les | $dc, $de |" >>"$TABLES"
	echo "$h $sc $se" >>"$RUN/herd.dat"
	if [ "$h" = "$HMAX" ]; then HLC=$lc; HLE=$le; HSC=$sc; HSE=$se; fi
done
w=$(warn_sum "$W2" 2 7)
[ -z "$w" ] || { echo; echo "$WARN_NOTE: $w."; } >>"$TABLES"
other_note 2
echo >>"$TABLES"
s0c=$(med "$W2" "\$1 == $H0 && \$2 == \"core\"" 4)
s0e=$(med "$W2" "\$1 == $H0 && \$2 == \"ext\"" 4)
VERDICTS+=("$(overall "$(judge "$HLE" ge 0.9)") | herd: $HMAX idle listeners on other channels cost notify_ext under 10% | notify_ext loses $(floss "$HLE") ($(fmt0 "$s0e") -> $(fmt0 "$(first "$HSE")") tps); core loses $(floss "$HLC") ($(fmt0 "$s0c") -> $(fmt0 "$(first "$HSC")") tps)")

# ------------------------------------------------------------------ 3
{
	echo "### 3. Delivery latency: notifier's call to the idle listener's receipt (µs)"
	echo
	echo "Payload = CLOCK_REALTIME taken just before the notify query is sent; ${T_LAT} s per run, $LREPS"
	echo "repetitions; medians for rate, p50, p99, worst run for max. Paced: one connection sending at a"
	echo "fixed rate. Saturated: $LAT_SAT_CONNS connections sending autocommit notifies as fast as the server"
	echo "answers, so each system runs at its own maximum rate. \"notify call\" = the notifier's round trip"
	echo "for one autocommit notify (p99.9 / max)."
	echo
	echo "| load | system | notifies/s | p50 | p99 | max | p99 ext/core | notify call p99.9 / max | received = sent | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"
} >>"$TABLES"
LAT_TXT=""
LAT_J=""
for load in low high sat; do
	case $load in
		low) lname="paced ${LAT_RATE}/s" ;;
		high) lname="paced ${LAT_HIGH_RATE}/s" ;;
		sat) lname=saturated ;;
	esac
	rp=$(pratio "$W3" "\$1 == \"$load\" && \$2 == \"ext\"" "\$1 == \"$load\" && \$2 == \"core\"" 3 6)
	for v in core ext; do
		cond="\$1 == \"$load\" && \$2 == \"$v\""
		name=$([ $v = core ] && echo core || echo notify_ext)
		errs=$(awk -F'\t' "$cond { e += \$10 } END { print e + 0 }" "$W3")
		echo "| $lname | $name | $(fmt0 "$(med "$W3" "$cond" 4)") | $(fmt0 "$(med "$W3" "$cond" 5)") | $(fmt0 "$(med "$W3" "$cond" 6)") | $(fmt0 "$(maxof "$W3" "$cond" 7)") | $([ $v = ext ] && fr "$rp" || true) | $(fmt0 "$(med "$W3" "$cond" 11)") / $(fmt0 "$(maxof "$W3" "$cond" 12)") | $(delivery_check "$W3" "$cond" 9 8) | $errs |" >>"$TABLES"
	done
	ok=$(judge "$rp" le)
	LAT_J="$LAT_J $ok"
	LAT_TXT="$LAT_TXT $lname: p99 core $(fmt0 "$(med "$W3" "\$1 == \"$load\" && \$2 == \"core\"" 6)") µs, notify_ext $(fmt0 "$(med "$W3" "\$1 == \"$load\" && \$2 == \"ext\"" 6)") µs, ext/core $(fr "$rp") $ok;"
done
w=$(warn_sum "$W3" 2 13)
[ -z "$w" ] || { echo; echo "$WARN_NOTE: $w."; } >>"$TABLES"
other_note 3
echo >>"$TABLES"
VERDICTS+=("$(overall $LAT_J) | latency p99 no worse than core |${LAT_TXT%;}")

# ------------------------------------------------------------------ 4
{
	echo "### 4. Fan-out: one notifier, $FAN_N listeners on the same channel"
	echo
	echo "Autocommit notifies on one connection for ${T_FAN} s, $LREPS repetitions; deliveries/s = notifications"
	echo "received by all listeners together / (last receipt - first send)."
	echo
	echo "| system | notifies sent/s | deliveries/s | ext/core | every listener got every one |"
	echo "|---|---:|---:|---:|---|"
} >>"$TABLES"
rf=$(pratio "$W4" '$1 == "ext"' '$1 == "core"' 2 3)
for v in core ext; do
	all=$(awk -F'\t' -v v=$v '$1 == v { n++; if ($7 == 1) ok++ } END { if (ok == n) print "yes (" n " of " n " runs)"; else printf "no (%d of %d runs)", ok, n }' "$W4")
	name=$([ $v = core ] && echo core || echo notify_ext)
	echo "| $name | $(fmt0 "$(med "$W4" "\$1 == \"$v\"" 8)") | $(fmt0 "$(med "$W4" "\$1 == \"$v\"" 3)") | $([ $v = ext ] && fr "$rf" || true) | $all |" >>"$TABLES"
done
other_note 4
echo >>"$TABLES"

# ------------------------------------------------------------------ 5
{
	echo "### 5. Big transactions: $BIG_N notifies in one transaction"
	echo
	echo "calls = the statement running the notify calls; commit = COMMIT; delivered = from COMMIT's start"
	echo "to the listener's last receipt; memory contexts = the notifier backend's"
	echo "pg_backend_memory_contexts total before BEGIN -> right before COMMIT; VmHWM = its peak RSS"
	echo "(fresh connection; includes the shared memory it touched). Medians of $LREPS."
	echo
	echo "| payloads | system | calls ms | commit ms | delivered ms | received | memory contexts MB | VmHWM MB |"
	echo "|---|---|---:|---:|---:|---:|---|---|"
} >>"$TABLES"
for kind in distinct same; do
	for v in core ext; do
		cond="\$1 == \"$kind\" && \$2 == \"$v\""
		name=$([ $v = core ] && echo core || echo notify_ext)
		kname=$([ $kind = distinct ] && echo "$BIG_N distinct" || echo "$BIG_N identical")
		echo "| $kname | $name | $(ms "$(med "$W5" "$cond" 4)") | $(ms "$(med "$W5" "$cond" 5)") | $(ms "$(med "$W5" "$cond" 6)") | $(fmt0 "$(med "$W5" "$cond" 7)") | $(mb "$(med "$W5" "$cond" 11)") -> $(mb "$(med "$W5" "$cond" 12)") | $(mb "$(med "$W5" "$cond" 8)") -> $(mb "$(med "$W5" "$cond" 9)") |" >>"$TABLES"
	done
done
other_note 5
echo >>"$TABLES"

# ------------------------------------------------------------------ 6
{
	echo "### 6. Memory over $MEM_N notifications (10 per transaction, 2 pgbench clients)"
	echo
	echo "One listener backend per system, sampled after a warm-up of $MEM_WARM notifications (start),"
	echo "then after half and after all of them (core and notify_ext halves interleaved). RssAnon ="
	echo "private memory, where a leak shows; RssShmem = shared memory the backend has touched (grows"
	echo "until the whole ring has been read once, bounded by notify_ext.queue_size). Shared memory ="
	echo "pg_shmem_allocations (notify_ext: its three areas; core: Async Queue Control + Notify SLRU),"
	echo "fixed at server start; core also keeps its queue in pg_notify/ on disk."
	echo
	echo "| system | RssAnon kB start / middle / end | RssShmem kB start / middle / end | shared memory kB | pg_notify/ kB (end) | delivered | flat |"
	echo "|---|---|---|---:|---:|---|---|"
} >>"$TABLES"
MEM_OK=1
MEM_TXT=""
for v in core ext; do
	g() { awk -F'\t' -v v=$v -v p="$1" -v c="$2" '$1 == v && $2 == p { print $c }' "$W6"; }
	a0=$(g start 4); a1=$(g middle 4); a2=$(g end 4)
	s0=$(g start 6); s1=$(g middle 6); s2=$(g end 6)
	shm=$(g end 7); disk=$(g end 8)
	growth=$(( a2 - a1 ))
	if [ "${growth#-}" -le 128 ]; then flat="yes ($growth kB middle->end)"; else flat="NO (+$growth kB middle->end)"; fi
	name=$([ $v = core ] && echo core || echo notify_ext)
	echo "| $name | $a0 / $a1 / $a2 | $s0 / $s1 / $s2 | $(( shm / 1024 )) | $([ $v = core ] && echo "$disk" || echo "-") | ${MEM_GOT[$v]} of $MEM_EXPECT | $flat |" >>"$TABLES"
	MEM_TXT="$MEM_TXT $name listener RssAnon $a0 / $a1 / $a2 kB;"
	if [ $v = ext ] && [ "${growth#-}" -gt 128 ]; then MEM_OK=0; fi
	if [ $v = ext ] && [ "${MEM_GOT[$v]}" != "$MEM_EXPECT" ]; then MEM_OK=0; fi
done
other_note 6
echo >>"$TABLES"
VERDICTS+=("$([ $MEM_OK = 1 ] && echo HOLDS || echo FAILS) | memory flat over $MEM_N notifications |${MEM_TXT%;}; notify_ext's shared memory is fixed at server start ($(( $(awk -F'\t' '$1 == "ext" && $2 == "end" { print $7 }' "$W6") / 1024 )) kB)")

# ------------------------------------------------------------------ 7
# bench/stuck.sh wrote its section (table and notes) itself
if [ -n "${STUCK_MD:-}" ] && [ -s "$STUCK_MD" ]; then
	cat "$STUCK_MD" >>"$TABLES"
fi

# ------------------------------------------------------------------ 9 to 14
# bench/flush.sh (with its plot, flush.png, next to results.md),
# bench/fanout_scale.sh, bench/channels.sh, bench/spill.sh,
# bench/payloads.sh and bench/standby.sh wrote their sections themselves
for f in "${FLUSH_MD:-}" "${FANOUT_MD:-}" "${CHANNELS_MD:-}" "${SPILL_MD:-}" "${PAYLOADS_MD:-}" "${STANDBY_MD:-}"; do
	if [ -n "$f" ] && [ -s "$f" ]; then
		cat "$f" >>"$TABLES"
	fi
done

{
	echo "| verdict | target | measured |"
	echo "|---|---|---|"
	for v in "${VERDICTS[@]}"; do echo "| $v |"; done
	echo
} >"$TARGETS"

# ------------------------------------------------------------------ plots
GNUPLOT_OK=0
xtics() { awk '{ printf "%s\"%s\" %s", (NR > 1 ? ", " : ""), $1, $1 }' "$1"; }
if command -v gnuplot >/dev/null &&
	gnuplot <<EOF; then GNUPLOT_OK=1; fi
set terminal pngcairo size 800,500 font ",10" noenhanced
set output "$OUT/throughput.png"
set title "Commit throughput: BEGIN; INSERT; notify; COMMIT (synchronous_commit on, $(nproc) cores)"
set xlabel "pgbench clients"
set ylabel "transactions per second (median, min-max bars)"
set logscale x 2
set xtics ($(xtics "$RUN/throughput.dat"))
set xrange [0.8:20]
set yrange [0:*]
set key top left
set grid
plot "$RUN/throughput.dat" using 1:2:3:4 with yerrorlines lw 2 dt 2 pt 7 lc rgb "gray40" title "no notification (limit)", \
     "" using 1:8:9:10 with yerrorlines lw 2 pt 5 lc rgb "#009e73" title "notify_ext", \
     "" using 1:5:6:7 with yerrorlines lw 2 pt 9 lc rgb "#d55e00" title "core NOTIFY"
set output "$OUT/herd.png"
set title "Thundering herd: autocommit notify, 2 clients, idle listeners on other channels"
set xlabel "idle listeners on other channels"
set ylabel "notifies per second (median, min-max bars; log scale)"
unset logscale x
set logscale y
set xrange [*:*]
set yrange [*:*]
set xtics ($(xtics "$RUN/herd.dat"))
set offsets graph 0.05, graph 0.05, 0, 0
set key bottom left
plot "$RUN/herd.dat" using 1:5:6:7 with yerrorlines lw 2 pt 5 lc rgb "#009e73" title "notify_ext", \
     "" using 1:2:3:4 with yerrorlines lw 2 pt 9 lc rgb "#d55e00" title "core NOTIFY"
EOF

# ------------------------------------------------------------------ results.md
PGVER=$(PSQL -d bench -c "SELECT version()")
CPU=$(lscpu 2>/dev/null | awk -F: '/^Model name/ { sub(/^ +/, "", $2); print $2; exit }')
RAM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
CMD=bench/run.sh
SIZE=default
if [ $QUICK = 1 ]; then CMD="$CMD --quick"; SIZE="--quick (smoke size: the numbers mean nothing)"; fi
{
	echo "# notify_ext benchmark results"
	echo
	echo "Generated by \`$CMD\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${ELAPSED} s ($SIZE size)."
	echo "Every workload ran against core LISTEN/NOTIFY and notify_ext (and, for commit throughput,"
	echo "the same transaction without a notification) in the same run on the same cluster, the"
	echo "variants interleaved: core, notify_ext, no notification, core, ... Absolute numbers are"
	echo "medians over the repetitions; ratios are medians of the per-repetition ratios (variants"
	echo "measured back to back), with their range in parentheses."
	echo
	echo "## Machine and settings"
	echo
	echo "- CPU: $CPU, $(nproc) cores; RAM $RAM; kernel $(uname -r)"
	echo "- $PGVER"
	echo "- notify_ext built from commit $BUILD_COMMIT; notify_ext.queue_size $(PSQL -d bench -c 'SHOW notify_ext.queue_size')"
	echo "- postgresql.conf: $(printf '`%s`, ' "${CONF[@]}" | sed 's/, $//'); everything else initdb's defaults"
	echo "  (shared_buffers $(PSQL -d bench -c 'SHOW shared_buffers'), wal_sync_method $(PSQL -d bench -c 'SHOW wal_sync_method'))"
	echo "- clients on the same machine over the Unix socket: pgbench $("$BINDIR/pgbench" --version | awk '{ print $3 }'),"
	echo "  bench/listener.c (libpq) for listeners and the latency, fan-out and big-transaction notifiers"
	echo
	echo "## Results"
	echo
	cat "$TABLES"
	echo "## Targets"
	echo
	echo "A ratio's range is that of the per-repetition ratios. \"ok\": the median meets the"
	echo "target; \"noise\": the median misses it but some repetitions meet it, so this run cannot"
	echo "tell the two apart (HOLDS within noise); \"WORSE\": every repetition misses (FAILS)."
	echo
	cat "$TARGETS"
	if [ $GNUPLOT_OK = 1 ]; then
		echo "## Plots"
		echo
		echo "![commit throughput vs clients](throughput.png)"
		echo
		echo "![throughput vs idle listeners](herd.png)"
		echo
	fi
} >"$OUT/results.md"

echo
cat "$TABLES" "$TARGETS"
log "wrote $OUT/results.md$([ $GNUPLOT_OK = 1 ] && echo ", $OUT/throughput.png, $OUT/herd.png" || true)$([ -s "$OUT/flush.png" ] && echo ", $OUT/flush.png" || true) (run took ${ELAPSED} s)"
