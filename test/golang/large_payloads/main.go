// large_payloads: Go lib/pq receives large notify_ext payloads intact.
//
// The notifying session (database/sql, lib/pq) sets
// notify_ext.max_payload_size = '128MB' (superuser) and sends with
// ext_notify(), autocommit, a 1MB and an exactly 64MB ASCII payload, then
// one transaction of small, 1MB non-ASCII, small, ~64MB non-ASCII, small
// (non-ASCII: random characters of Latin-1, so representable in LATIN1).
// For each, the server computes length and md5 of the payload and of
// convert_to(payload, 'LATIN1') in the statement that sends it.
//
// Two listeners wait idle meanwhile:
//   - pq.Listener (LISTEN through notify_ext's drop-in mode, which the
//     runner turns on for this database), client_encoding UTF8 (lib/pq
//     insists on it at connection time);
//   - pq.ListenerConn after SET client_encoding = 'LATIN1', listening with
//     ext_listen().
//
// Each must receive exactly the sent sequence, in order, from the
// notifier's PID, with the length and md5 the server computed for its
// encoding.  Prints TAP lines; exits 1 on any failure.
package main

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"
)

const (
	channel = "lp_go"
	mb      = 1024 * 1024
)

var (
	n      int
	failed int
	t0     = time.Now()
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

func note(format string, args ...interface{}) {
	fmt.Printf("# [%5.1f s] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
}

func bail(args ...interface{}) {
	fmt.Println(append([]interface{}{"Bail out!"}, args...)...)
	os.Exit(1)
}

// asciiPayload: n random printable ASCII bytes
func asciiPayload(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		bail(err)
	}
	for i := range b {
		b[i] = 0x21 + b[i]%94
	}
	return string(b)
}

// latinPayload: n random characters of Latin-1 (ASCII and U+00A0..U+00FF),
// as UTF-8
func latinPayload(n int) string {
	r := make([]byte, n)
	if _, err := rand.Read(r); err != nil {
		bail(err)
	}
	var sb strings.Builder
	sb.Grow(n * 3 / 2)
	for _, c := range r {
		k := int(c) % 191
		if k < 95 {
			sb.WriteByte(byte(0x20 + k))
		} else {
			sb.WriteRune(rune(0xa0 + k - 95))
		}
	}
	return sb.String()
}

type digest struct {
	len int
	md5 string
}

type sent struct {
	name string
	enc  map[string]digest // "UTF8", "LATIN1"
}

type received struct {
	channel string
	pid     int
	d       digest
}

func size(n int) string {
	if n >= mb {
		return fmt.Sprintf("%.1f MB", float64(n)/mb)
	}
	return fmt.Sprintf("%d B", n)
}

func main() {
	dsn := "sslmode=disable dbname=" + os.Getenv("PGDATABASE")
	ctx := context.Background()

	db, err := sql.Open("postgres", dsn)
	if err != nil {
		bail(err)
	}
	defer db.Close()
	nconn, err := db.Conn(ctx)
	if err != nil {
		bail(err)
	}
	defer nconn.Close()
	if _, err := nconn.ExecContext(ctx, "SET notify_ext.max_payload_size = '128MB'"); err != nil {
		bail(err)
	}
	var setting string
	var npid int
	nconn.QueryRowContext(ctx, "SELECT current_setting('notify_ext.max_payload_size'), pg_backend_pid()").Scan(&setting, &npid)
	check("the notifier (superuser) sets notify_ext.max_payload_size = 128MB", setting == "128MB", setting)

	// listener 1: pq.Listener, plain LISTEN (drop-in mode), UTF8
	utf8Chan := make(chan *pq.Notification, 64)
	listener := pq.NewListener(dsn, time.Second, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			note("pq.Listener event %d: %v", ev, err)
		}
	})
	defer listener.Close()
	if err := listener.Listen(channel); err != nil {
		bail("pq.Listener.Listen:", err)
	}
	go func() {
		for nt := range listener.Notify {
			if nt != nil {
				utf8Chan <- nt
			}
		}
	}()

	// listener 2: pq.ListenerConn with client_encoding LATIN1
	latinChan := make(chan *pq.Notification, 64)
	lc, err := pq.NewListenerConn(dsn, latinChan)
	if err != nil {
		bail("pq.NewListenerConn:", err)
	}
	defer lc.Close()
	for _, q := range []string{"SET client_encoding = 'LATIN1'", "SELECT ext_listen('" + channel + "')"} {
		if ok, err := lc.ExecSimpleQuery(q); !ok || err != nil {
			bail(q, ok, err)
		}
	}

	// both listen: a warm-up notification reaches both
	if _, err := nconn.ExecContext(ctx, "SELECT ext_notify($1, 'warm-up')", channel); err != nil {
		bail(err)
	}
	for _, c := range []chan *pq.Notification{utf8Chan, latinChan} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			bail("the warm-up notification did not arrive")
		}
	}

	send := func(tx *sql.Tx, name, payload string) sent {
		q := `SELECT octet_length(p), md5(p), octet_length(convert_to(p, 'LATIN1')),
		             md5(convert_to(p, 'LATIN1'))
		        FROM (SELECT $2::text AS p) s, ext_notify($1, s.p) n`
		var u, l digest
		var row *sql.Row
		if tx != nil {
			row = tx.QueryRowContext(ctx, q, channel, payload)
		} else {
			row = nconn.QueryRowContext(ctx, q, channel, payload)
		}
		if err := row.Scan(&u.len, &u.md5, &l.len, &l.md5); err != nil {
			bail("send", name, err)
		}
		return sent{name, map[string]digest{"UTF8": u, "LATIN1": l}}
	}

	var all []sent
	t := time.Now()
	all = append(all, send(nil, "1MB ASCII", asciiPayload(mb)))
	all = append(all, send(nil, "64MB ASCII", asciiPayload(64*mb)))
	note("sent 1MB and 64MB autocommit in %.1f s", time.Since(t).Seconds())
	t = time.Now()
	tx, err := nconn.BeginTx(ctx, nil)
	if err != nil {
		bail(err)
	}
	nonASCII := latinPayload(44 * mb)
	for _, p := range []struct{ name, payload string }{
		{"small 1", "small 1"},
		{"1MB non-ASCII", latinPayload(700 * 1024)},
		{"small 2", "small 2 \u00e9\u00e8\u00e0\u00fc\u00df"},
		{"64MB non-ASCII", nonASCII},
		{"small 3", "small 3"},
	} {
		all = append(all, send(tx, p.name, p.payload))
	}
	if err := tx.Commit(); err != nil {
		bail("commit", err)
	}
	note("sent a transaction of 5 in %.1f s", time.Since(t).Seconds())
	check(fmt.Sprintf("a 64MB payload (%d bytes) and a ~64MB non-ASCII one (%d bytes in UTF8, %d in LATIN1) sent",
		all[1].enc["UTF8"].len, all[5].enc["UTF8"].len, all[5].enc["LATIN1"].len),
		all[1].enc["UTF8"].len == 64*mb && all[5].enc["UTF8"].len > 60*mb &&
			all[5].enc["UTF8"].len == len(nonASCII) && utf8.ValidString(nonASCII) &&
			all[5].enc["LATIN1"].len < all[5].enc["UTF8"].len, nil)

	deadline := time.Now().Add(60 * time.Second)
	for _, l := range []struct {
		name, enc string
		c         chan *pq.Notification
	}{{"pq.Listener UTF8", "UTF8", utf8Chan}, {"pq.ListenerConn LATIN1", "LATIN1", latinChan}} {
		var got []received
		t := time.Now()
	collect:
		for len(got) < len(all) {
			select {
			case nt := <-l.c:
				sum := md5.Sum([]byte(nt.Extra))
				got = append(got, received{nt.Channel, nt.BePid, digest{len(nt.Extra), hex.EncodeToString(sum[:])}})
			case <-time.After(time.Until(deadline)):
				break collect
			}
		}
		note("%s: %d notifications in %.1f s", l.name, len(got), time.Since(t).Seconds())
		inOrder := len(got) == len(all)
		for i := range got {
			if got[i].channel != channel || got[i].pid != npid {
				inOrder = false
			}
		}
		check(fmt.Sprintf("%s: %d notifications arrive, on %s, from the notifier (%d)", l.name, len(all), channel, len(got)),
			inOrder, got)
		for i, s := range all {
			want := s.enc[l.enc]
			ok := i < len(got) && got[i].d == want
			var g interface{}
			if i < len(got) {
				g = got[i].d
			}
			check(fmt.Sprintf("%s: #%d %s (%s in %s) intact, in its place: length and md5 as the server computed",
				l.name, i+1, s.name, size(want.len), l.enc), ok, fmt.Sprintf("got %v, want %v", g, want))
		}
	}
	fmt.Printf("1..%d\n", n)
	if failed > 0 {
		os.Exit(1)
	}
}
