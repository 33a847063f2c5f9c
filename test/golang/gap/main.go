// gap: Go lib/pq as a drop-in client of notify_ext's gap signal.
//
// With notify_ext.queue_full_action = skip, a session that LISTENs (plain
// LISTEN, drop-in mode) and sits in a transaction while the queue overflows
// is skipped.  At its COMMIT, lib/pq must hand the WARNING (SQLSTATE 01N01)
// to its notice handler and the notify_ext.gap notification (JSON payload)
// to its notification handler, before the notifications that follow; then
// the session receives new notifications normally.  The queue overflows
// only when the ring does: it runs with notify_ext.queue_disk_limit = 0
// (no spill to disk), reset at the end.  Prints TAP lines.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

var (
	n      int
	failed int
)

func check(name string, ok bool, detail interface{}) {
	n++
	if ok {
		fmt.Printf("ok %d - %s\n", n, name)
	} else {
		failed++
		fmt.Printf("not ok %d - %s %v\n", n, name, detail)
	}
}

type event struct {
	kind    string // "notice" or "notify"
	channel string
	payload string
	code    string
	message string
}

func main() {
	dsn := "sslmode=disable dbname=" + os.Getenv("PGDATABASE")
	ctx := context.Background()

	var mu sync.Mutex
	var events []event
	base, err := pq.NewConnector(dsn)
	if err != nil {
		fmt.Println("Bail out!", err)
		os.Exit(1)
	}
	withNotices := pq.ConnectorWithNoticeHandler(base, func(e *pq.Error) {
		mu.Lock()
		events = append(events, event{kind: "notice", code: string(e.Code), message: e.Message})
		mu.Unlock()
	})
	withBoth := pq.ConnectorWithNotificationHandler(withNotices, func(nt *pq.Notification) {
		mu.Lock()
		events = append(events, event{kind: "notify", channel: nt.Channel, payload: nt.Extra})
		mu.Unlock()
	})
	ldb := sql.OpenDB(withBoth)
	defer ldb.Close()
	ldb.SetMaxOpenConns(1)
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		fmt.Println("Bail out!", err)
		os.Exit(1)
	}
	defer admin.Close()
	admin.SetMaxOpenConns(1)
	must := func(db *sql.DB, q string) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			fmt.Println("Bail out!", q, err)
			os.Exit(1)
		}
	}
	must(admin, "ALTER SYSTEM SET notify_ext.queue_full_action = 'skip'")
	must(admin, "ALTER SYSTEM SET notify_ext.queue_disk_limit = 0")
	must(admin, "SELECT pg_reload_conf()")
	defer func() {
		admin.ExecContext(ctx, "ALTER SYSTEM RESET notify_ext.queue_full_action")
		admin.ExecContext(ctx, "ALTER SYSTEM RESET notify_ext.queue_disk_limit")
		admin.ExecContext(ctx, "SELECT pg_reload_conf()")
	}()
	// the notifying session (admin) must see both before it notifies
	var action, limit string
	for i := 0; i < 100; i++ {
		admin.QueryRowContext(ctx, "SELECT current_setting('notify_ext.queue_full_action'), current_setting('notify_ext.queue_disk_limit')").Scan(&action, &limit)
		if action == "skip" && limit == "0" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("queue_full_action = skip and queue_disk_limit = 0 are in effect",
		action == "skip" && limit == "0", action+" "+limit)

	lconn, err := ldb.Conn(ctx)
	if err != nil {
		fmt.Println("Bail out!", err)
		os.Exit(1)
	}
	for _, q := range []string{"SET notify_ext.intercept = on", "LISTEN gapgo",
		`LISTEN "notify_ext.gap"`, "BEGIN", "SELECT 1"} {
		if _, err := lconn.ExecContext(ctx, q); err != nil {
			fmt.Println("Bail out!", q, err)
			os.Exit(1)
		}
	}
	// the queue overflows several times while the listener is parked
	var size int64
	admin.QueryRowContext(ctx, "SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'notify_ext.queue_size'").Scan(&size)
	batches := int(3*size/(260*7900)) + 1
	notifyErrs := 0
	for b := 1; b <= batches; b++ {
		q := fmt.Sprintf("SELECT count(ext_notify('gapgo', %d || ':' || i || ':' || repeat('x', 7880))) FROM generate_series(1, 260) i", b)
		if _, err := admin.ExecContext(ctx, q); err != nil {
			notifyErrs++
		}
	}
	check(fmt.Sprintf("no notifying commit failed over %d batches (3x the queue)", batches), notifyErrs == 0, notifyErrs)
	if _, err := lconn.ExecContext(ctx, "COMMIT"); err != nil {
		check("COMMIT of the parked transaction", false, err)
	}
	must(admin, "SELECT ext_notify('gapgo', 'after')")
	lconn.ExecContext(ctx, "SELECT 1") // drains 'after' through the handler
	lconn.Close()

	mu.Lock()
	defer mu.Unlock()
	noticeAt, gapAt, afterAt, delivered := -1, -1, -1, 0
	var missed float64
	for i, e := range events {
		switch {
		case e.kind == "notice" && e.code == "01N01" && noticeAt < 0:
			noticeAt = i
		case e.kind == "notify" && e.channel == "notify_ext.gap" && gapAt < 0:
			gapAt = i
			var j map[string]interface{}
			if err := json.Unmarshal([]byte(e.payload), &j); err == nil {
				missed, _ = j["missed"].(float64)
			}
		case e.kind == "notify" && e.channel == "gapgo" && e.payload == "after":
			afterAt = i
		case e.kind == "notify" && e.channel == "gapgo":
			delivered++
		}
	}
	check("lib/pq's notice handler gets the WARNING with SQLSTATE 01N01", noticeAt >= 0, len(events))
	check("the notice says how many notifications were missed",
		noticeAt >= 0 && strings.Contains(events[noticeAt].message, "notifications were not delivered"), noticeAt)
	check("lib/pq's notification handler gets notify_ext.gap with a JSON payload (missed > 0)",
		gapAt >= 0 && missed > 0, gapAt)
	check(fmt.Sprintf("delivered + missed == sent (%d + %.0f == %d)", delivered, missed, batches*260),
		delivered+int(missed) == batches*260, nil)
	check("the gap comes before the notifications delivered after it",
		gapAt >= 0 && (delivered == 0 || gapAt < afterAt) && func() bool {
			for i := 0; i < gapAt; i++ {
				if events[i].kind == "notify" && events[i].channel == "gapgo" {
					return false
				}
			}
			return true
		}(), gapAt)
	check("the session then receives new notifications normally", afterAt > gapAt, afterAt)
	fmt.Printf("1..%d\n", n)
	if failed > 0 {
		os.Exit(1)
	}
}
