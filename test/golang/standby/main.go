// standby: Go lib/pq's pq.Listener, unmodified, on a hot standby in
// drop-in mode.
//
// The database (NE_PRIMARY_DSN, NE_STANDBY_DSN: the same database on a
// primary with notify_ext.wal_log = on and on a hot standby of it) has
// ALTER DATABASE ... SET notify_ext.intercept = on, made on the primary and
// replicated: the application's code is core LISTEN/NOTIFY code.  A
// pq.Listener connected to the standby listens on a channel (lib/pq sends
// a plain LISTEN) and a connection to the primary sends pg_notify() and
// NOTIFY.  The listener must receive, from its Notify channel:
//   - a first batch (autocommit statements and a transaction), in order,
//     with the primary backend's PID (pg_backend_pid() there);
//   - nothing during a pause, nothing of an aborted transaction, then a
//     second batch after the pause, in order;
//   - after its standby backend is terminated (pg_terminate_backend() on
//     the standby), lib/pq reconnects to the standby and listens again (the
//     nil notification that signals it), and a third batch arrives, in
//     order, from a new primary session's PID.
//
// No delivery time is asserted: a notification not there after 30 s counts
// as missing.  Prints TAP lines.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lib/pq"
)

const (
	channel = "go_standby"
	wait    = 30 * time.Second // before a notification counts as missing
)

var (
	n      int
	failed int
)

func check(name string, ok bool, detail ...interface{}) bool {
	n++
	if ok {
		fmt.Printf("ok %d - %s\n", n, name)
	} else {
		failed++
		fmt.Printf("not ok %d - %s\n", n, name)
		if len(detail) > 0 {
			fmt.Printf("#   %s\n", fmt.Sprint(detail...))
		}
	}
	return ok
}

func bail(what string, err error) {
	fmt.Printf("Bail out! %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	ctx := context.Background()
	primaryDSN := os.Getenv("NE_PRIMARY_DSN")
	standbyDSN := os.Getenv("NE_STANDBY_DSN")
	if primaryDSN == "" || standbyDSN == "" {
		bail("environment", fmt.Errorf("NE_PRIMARY_DSN and NE_STANDBY_DSN must be set"))
	}

	standby, err := sql.Open("postgres", standbyDSN)
	if err != nil {
		bail("sql.Open standby", err)
	}
	defer standby.Close()
	primary, err := sql.Open("postgres", primaryDSN)
	if err != nil {
		bail("sql.Open primary", err)
	}
	defer primary.Close()
	primary.SetMaxIdleConns(0) // a closed *sql.Conn ends its session: the next one is a new backend

	var inRecovery bool
	var intercept string
	if err := standby.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), current_setting('notify_ext.intercept')").Scan(&inRecovery, &intercept); err != nil {
		bail("standby", err)
	}
	check("the listener's server is a hot standby", inRecovery)
	check("drop-in mode is on there (ALTER DATABASE on the primary, replicated)", intercept == "on", "notify_ext.intercept = ", intercept)

	// the Listener and its events
	var mu sync.Mutex
	var events []pq.ListenerEventType
	l := pq.NewListener(standbyDSN, 100*time.Millisecond, time.Second, func(ev pq.ListenerEventType, err error) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	defer l.Close()
	if !check("pq.Listener.Listen(\""+channel+"\") on the standby (a plain LISTEN)", l.Listen(channel) == nil) {
		os.Exit(1)
	}
	// the one session listening on the channel in the standby's listener table
	listenerPid := func() (int, error) {
		var count, pid int
		err := standby.QueryRowContext(ctx, "SELECT count(*), coalesce(max(pid), 0) FROM ext_listeners() WHERE channel = $1", channel).Scan(&count, &pid)
		if err == nil && count != 1 {
			err = fmt.Errorf("%d sessions listen on %s there", count, channel)
		}
		return pid, err
	}
	lpid, err := listenerPid()
	check("the standby's ext_listeners() has it: the LISTEN went to notify_ext", err == nil, err)

	// a primary session whose PID the notifications must carry
	var pconn *sql.Conn
	var ppid int
	openPrimary := func() {
		if pconn != nil {
			pconn.Close()
		}
		if pconn, err = primary.Conn(ctx); err != nil {
			bail("primary connection", err)
		}
		var pint string
		if err := pconn.QueryRowContext(ctx, "SELECT pg_backend_pid(), current_setting('notify_ext.intercept')").Scan(&ppid, &pint); err != nil {
			bail("primary", err)
		}
		check(fmt.Sprintf("primary session (PID %d) in drop-in mode", ppid), pint == "on", "notify_ext.intercept = ", pint)
	}
	openPrimary()
	firstPpid := ppid
	exec := func(q string, args ...interface{}) {
		if _, err := pconn.ExecContext(ctx, q, args...); err != nil {
			bail(q, err)
		}
	}

	// receive: the next notifications must be want, in order, from ppid
	receive := func(what string, want []string) {
		for i, p := range want {
			select {
			case nt := <-l.Notify:
				if nt == nil {
					check(fmt.Sprintf("%s: %d/%d", what, i+1, len(want)), false, "got lib/pq's nil notification (a reconnect)")
					return
				}
				check(fmt.Sprintf("%s: %d/%d %q", what, i+1, len(want), p),
					nt.Channel == channel && nt.Extra == p && nt.BePid == ppid,
					fmt.Sprintf("got (%q, %q, PID %d), want (%q, %q, PID %d)", nt.Channel, nt.Extra, nt.BePid, channel, p, ppid))
			case <-time.After(wait):
				check(fmt.Sprintf("%s: %d/%d %q", what, i+1, len(want), p), false, "nothing within ", wait)
				return
			}
		}
	}
	quiet := func(what string, d time.Duration) {
		select {
		case nt := <-l.Notify:
			if nt == nil {
				check(what, false, "got lib/pq's nil notification (a reconnect)")
			} else {
				check(what, false, fmt.Sprintf("got (%q, %q, PID %d)", nt.Channel, nt.Extra, nt.BePid))
			}
		case <-time.After(d):
			check(what, true)
		}
	}

	// ---------------------------------------------------------- batch 1
	var want []string
	for i := 1; i <= 3; i++ {
		p := fmt.Sprintf("b1-auto-%d", i)
		exec("SELECT pg_notify($1, $2)", channel, p)
		want = append(want, p)
	}
	exec("NOTIFY " + channel + ", 'b1-stmt'")
	want = append(want, "b1-stmt")
	exec("BEGIN")
	for i := 1; i <= 5; i++ {
		p := fmt.Sprintf("b1-tx-%d", i)
		exec("SELECT pg_notify($1, $2)", channel, p)
		want = append(want, p)
	}
	exec("NOTIFY " + channel + ", 'b1-tx-stmt'")
	want = append(want, "b1-tx-stmt")
	exec("COMMIT")
	receive("batch 1 (pg_notify, NOTIFY, a transaction)", want)

	// ------------------------------------------- a pause, an abort, batch 2
	quiet("nothing more arrives during a 2 s pause", 2*time.Second)
	exec("BEGIN")
	exec("SELECT pg_notify($1, 'aborted')", channel)
	exec("NOTIFY " + channel + ", 'aborted too'")
	exec("ROLLBACK")
	want = nil
	for i := 1; i <= 10; i++ {
		p := fmt.Sprintf("b2-%d", i)
		exec("SELECT pg_notify($1, $2)", channel, p)
		want = append(want, p)
	}
	receive("batch 2 after the pause (the aborted transaction's never)", want)

	// --------------------- the standby backend terminated: lib/pq reconnects
	var terminated bool
	if err := standby.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", lpid).Scan(&terminated); err != nil {
		bail("pg_terminate_backend", err)
	}
	check(fmt.Sprintf("the listener's standby backend (PID %d) terminated", lpid), terminated)
	reconnected := false
	deadline := time.After(wait)
reconnect:
	for {
		select {
		case nt := <-l.Notify:
			if nt == nil {
				reconnected = true
				break reconnect
			}
			check("nothing but the reconnect comes after the termination", false,
				fmt.Sprintf("got (%q, %q, PID %d)", nt.Channel, nt.Extra, nt.BePid))
		case <-deadline:
			break reconnect
		}
	}
	check("lib/pq reconnected to the standby and listened again (its nil notification)", reconnected)
	mu.Lock()
	evs := append([]pq.ListenerEventType(nil), events...)
	mu.Unlock()
	sawDisc, sawRecon := false, false
	for _, e := range evs {
		if e == pq.ListenerEventDisconnected {
			sawDisc = true
		}
		if e == pq.ListenerEventReconnected && sawDisc {
			sawRecon = true
		}
	}
	check("its event callback got Disconnected, then Reconnected", sawDisc && sawRecon, fmt.Sprint(evs))
	newPid, err := listenerPid()
	check(fmt.Sprintf("the standby's ext_listeners() has the new session (PID %d), and only it", newPid),
		err == nil && newPid != lpid, err)

	// ----------------------------- batch 3, from a new primary session too
	openPrimary()
	check("batch 3 comes from a new primary session", ppid != firstPpid, "the same PID ", ppid)
	want = nil
	exec("BEGIN")
	for i := 1; i <= 5; i++ {
		p := fmt.Sprintf("b3-%d", i)
		exec("SELECT pg_notify($1, $2)", channel, p)
		want = append(want, p)
	}
	exec("COMMIT")
	exec("NOTIFY " + channel + ", 'b3-last'")
	want = append(want, "b3-last")
	receive("batch 3 after the reconnect", want)
	quiet("nothing else arrives", time.Second)

	pconn.Close()
	fmt.Printf("1..%d\n", n)
	fmt.Printf("# standby (Go lib/pq): %d passed, %d failed\n", n-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
