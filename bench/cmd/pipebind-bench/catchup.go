package main

// The MAM catch-up of "pipebind-bench -prosody -catchup N" (issue 6, item
// 4): a Prosody 13 archive of N messages, fetched by pipebind (login, MAM
// reconciliation into a fresh SQLite cache) and by a minimal raw client
// that sends the same page queries one after another and only scans the
// answers for the next page's cursor ("Prosody's own serving time"). Both
// are limited by Prosody's 50-message pages; the ratio of the two is what
// pipebind adds to the server's time.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/netem"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// catchupPageSize is the RSM <max> both clients ask for: pipebind's
// default (client.Config.SyncPageSize zero); Prosody caps it at 50.
const catchupPageSize = 250

// catchupResult reports the catch-up.
type catchupResult struct {
	Messages int     `json:"messages"`
	RTTms    float64 `json:"rtt_ms"`
	Runs     int     `json:"runs"`
	// Pages is how many MAM pages one pass takes (the raw client's count);
	// MsgsPerPage is what Prosody put in a full page.
	Pages       int     `json:"pages"`
	MsgsPerPage int     `json:"msgs_per_page"`
	FillMS      float64 `json:"fill_ms"`
	// ServeMS: the raw client, first query written to the last <fin> read
	// (median over the runs).
	ServeMS float64 `json:"prosody_serve_ms"`
	// SyncMS: pipebind, client.Dial returned to SyncReport returned (the
	// metadata query, every page, parsing and storing into SQLite).
	SyncMS float64 `json:"pipebind_sync_ms"`
	// NoSMSyncMS: the same with Config.NoSM (no XEP-0198 at bind time:
	// Prosody's stream management queues and acks every archived message).
	NoSMSyncMS float64 `json:"pipebind_nosm_sync_ms"`
	// LoginMS: pipebind's client.Dial (a cold cache: features first).
	LoginMS       float64 `json:"pipebind_login_ms"`
	ServeMsgsPerS float64 `json:"prosody_msgs_per_s"`
	SyncMsgsPerS  float64 `json:"pipebind_msgs_per_s"`
	// Ratio is SyncMS / ServeMS: 1.00 would be Prosody's own serving time.
	Ratio     float64 `json:"ratio"`
	NoSMRatio float64 `json:"nosm_ratio"`
	// PipebindPages and Stored are from pipebind's sync report.
	PipebindPages int    `json:"pipebind_pages"`
	Stored        int    `json:"stored"`
	FirstErr      string `json:"first_err,omitempty"`

	serve, sync, nosm, login []float64
}

// runCatchup starts its own Prosody (so the login benchmarks' accounts keep
// empty archives), fills the archive of "reader" with o.catchup messages
// from "writer", then measures o.catchupRuns passes of each client,
// interleaved, after one untimed raw pass.
func runCatchup(ctx context.Context, o benchOpts, tmp string, logw io.Writer) (*catchupResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	res := &catchupResult{Messages: o.catchup, RTTms: ms(o.catchupRTT), Runs: o.catchupRuns}
	fmt.Fprintf(logw, "bench: catch-up: starting Prosody for %d archived messages\n", o.catchup)
	users := map[string]string{"reader": "reader-pw-1", "writer": "writer-pw-1"}
	ps, err := prosodytest.Start(ctx, prosodytest.Options{Users: users})
	if err != nil {
		return nil, fmt.Errorf("catch-up: prosody: %w", err)
	}
	defer ps.Close()
	addr := ps.DirectTLSAddr
	if o.catchupRTT > 0 {
		px, err := netem.New(addr, netem.RTT(o.catchupRTT))
		if err != nil {
			return nil, err
		}
		defer px.Close()
		addr = px.Addr()
	}
	tlsCfg := ps.TLSConfig()

	t0 := time.Now()
	if err := fillArchive(ctx, ps.DirectTLSAddr, tlsCfg, ps.Domain, "writer", users["writer"], "reader@"+ps.Domain, o.catchup); err != nil {
		return nil, fmt.Errorf("catch-up: filling the archive: %w", err)
	}
	res.FillMS = ms(time.Since(t0))
	fmt.Fprintf(logw, "bench: catch-up: archive filled in %.1f s; %d runs\n", res.FillMS/1000, o.catchupRuns)

	raw := func() (rawPass, error) {
		return rawCatchup(ctx, addr, tlsCfg, ps.Domain, "reader", users["reader"], catchupPageSize)
	}
	// Warm-up: Prosody's first pass over a fresh archive also loads it.
	if _, err := raw(); err != nil {
		return nil, fmt.Errorf("catch-up: raw client: %w", err)
	}
	for i := range o.catchupRuns {
		p, err := raw()
		if err != nil {
			return nil, fmt.Errorf("catch-up: raw client: %w", err)
		}
		if p.results != o.catchup {
			return nil, fmt.Errorf("catch-up: the raw client read %d results, want %d", p.results, o.catchup)
		}
		res.serve = append(res.serve, ms(p.took))
		res.Pages, res.MsgsPerPage = p.pages, p.maxPerPage

		for _, noSM := range []bool{false, true} {
			dir := filepath.Join(tmp, fmt.Sprintf("catchup-%d-%t", i, noSM))
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, err
			}
			login, sync, rep, err := pipebindCatchup(ctx, o, addr, tlsCfg, ps.Domain, "reader", users["reader"], filepath.Join(dir, "cache.db"), noSM)
			os.RemoveAll(dir)
			if err == nil && rep.Stored != o.catchup {
				err = fmt.Errorf("pipebind (NoSM %t) stored %d messages, want %d", noSM, rep.Stored, o.catchup)
			}
			if err != nil {
				if res.FirstErr == "" {
					res.FirstErr = oneLine(err)
				}
				continue
			}
			if noSM {
				res.nosm = append(res.nosm, ms(sync))
				continue
			}
			res.login = append(res.login, ms(login))
			res.sync = append(res.sync, ms(sync))
			res.PipebindPages, res.Stored = rep.Pages, rep.Stored
		}
	}
	res.ServeMS, res.SyncMS, res.LoginMS = median(res.serve), median(res.sync), median(res.login)
	res.NoSMSyncMS = median(res.nosm)
	if res.ServeMS > 0 && res.NoSMSyncMS > 0 {
		res.NoSMRatio = res.NoSMSyncMS / res.ServeMS
	}
	if res.ServeMS > 0 {
		res.ServeMsgsPerS = float64(o.catchup) / (res.ServeMS / 1000)
	}
	if res.SyncMS > 0 {
		res.SyncMsgsPerS = float64(o.catchup) / (res.SyncMS / 1000)
		res.Ratio = res.SyncMS / res.ServeMS
	}
	return res, nil
}

type syncReport struct{ Pages, Stored int }

// pipebindCatchup logs in with a fresh cache (sync on, presence on, stream
// management unless noSM: the defaults) and waits for the reconciliation
// to finish.
func pipebindCatchup(ctx context.Context, o benchOpts, addr string, tlsCfg *tls.Config, domain, user, password, dbPath string, noSM bool) (login, sync time.Duration, rep syncReport, err error) {
	db, err := cache.Open(ctx, dbPath)
	if err != nil {
		return 0, 0, rep, err
	}
	defer db.Close()
	cfg := client.Config{
		JID: jid.MustParse(user + "@" + domain), Password: password,
		Addr: addr, TLS: client.TLSDirect, TLSConfig: tlsCfg, Cache: db,
		Timeout: o.timeout, NoSM: noSM,
	}
	t0 := time.Now()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return 0, 0, rep, err
	}
	defer c.Close()
	t1 := time.Now()
	r, err := c.SyncReport(ctx)
	t2 := time.Now()
	if err != nil {
		return 0, 0, rep, fmt.Errorf("sync: %w", err)
	}
	return t1.Sub(t0), t2.Sub(t1), syncReport{Pages: r.Pages, Stored: r.Stored}, nil
}

// rawConn is a minimal XMPP client over Direct TLS: it writes bytes and
// scans what it reads for markers, without an XML parser.
type rawConn struct {
	c    *tls.Conn
	buf  []byte // read, not yet consumed
	rbuf []byte
}

func rawDial(ctx context.Context, addr string, tlsCfg *tls.Config) (*rawConn, error) {
	tc, err := dialTLS(ctx, addr, tlsCfg)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
	}
	return &rawConn{c: tc, rbuf: make([]byte, 64<<10)}, nil
}

func (r *rawConn) write(s string) error {
	_, err := io.WriteString(r.c, s)
	return err
}

// until reads until marker is in the buffer and returns its index there.
func (r *rawConn) until(marker []byte) (int, error) {
	i, _, err := r.untilOneOf(marker)
	return i, err
}

// untilOneOf reads until one of the markers is in the buffer and returns
// the index of the first found and which marker it is.
func (r *rawConn) untilOneOf(markers ...[]byte) (idx, which int, err error) {
	from, longest := 0, 0
	for _, m := range markers {
		longest = max(longest, len(m))
	}
	for {
		for w, m := range markers {
			if i := bytes.Index(r.buf[from:], m); i >= 0 {
				return from + i, w, nil
			}
		}
		from = max(0, len(r.buf)-longest+1)
		n, err := r.c.Read(r.rbuf)
		r.buf = append(r.buf, r.rbuf[:n]...)
		if err != nil && n == 0 {
			return 0, 0, err
		}
	}
}

// consume drops the first n buffered bytes.
func (r *rawConn) consume(n int) { r.buf = append(r.buf[:0], r.buf[n:]...) }

// login logs in with one pipelined write (SASL2 PLAIN with Bind 2, which
// Prosody accepts before it has sent its features) and reads until the
// features that follow <success>.
func (r *rawConn) login(domain, user, password string) error {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if err := r.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='" +
		domain + "' from='" + user + "@" + domain + "'><authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" + ir +
		"</initial-response><bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind></authenticate>"); err != nil {
		return err
	}
	i, which, err := r.untilOneOf([]byte("</success>"), []byte("<failure"))
	if err != nil {
		return err
	}
	if which == 1 {
		return errors.New("the server refused the login")
	}
	r.consume(i)
	j, err := r.until([]byte("</stream:features>"))
	if err != nil {
		return err
	}
	r.consume(j + len("</stream:features>"))
	return nil
}

// ping sends an IQ ping and reads until its answer: every stanza the
// server received before it has been processed.
func (r *rawConn) ping(domain, id string) error {
	if err := r.write("<iq type='get' id='" + id + "' to='" + domain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		return err
	}
	i, err := r.until([]byte("'" + id + "'"))
	if err != nil {
		return err
	}
	r.consume(i)
	return nil
}

func (r *rawConn) close() {
	_ = r.write("</stream:stream>")
	r.c.Close()
}

// closeAndWait ends the stream and reads until the server ends its own (or
// the connection's deadline), then closes the connection.
func (r *rawConn) closeAndWait() {
	if r.write("</stream:stream>") == nil {
		_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = r.until([]byte("</stream:stream>"))
	}
	r.c.Close()
}

// fillArchive sends n chat messages from user to `to` (offline), in
// batches of one write each, then pings: Prosody archives each for both.
func fillArchive(ctx context.Context, addr string, tlsCfg *tls.Config, domain, user, password, to string, n int) error {
	r, err := rawDial(ctx, addr, tlsCfg)
	if err != nil {
		return err
	}
	defer r.close()
	if err := r.login(domain, user, password); err != nil {
		return err
	}
	return r.sendMessages(domain, to, "fill", n)
}

// sendMessages sends n chat messages to `to`, in batches of one write
// each, then pings and reads until the answer: Prosody handles a
// session's stanzas in order, archiving each message (internal storage
// writes synchronously) before it answers the ping, so every message is
// archived once sendMessages returns. tag makes the ids (and the pings')
// unique on the connection.
func (r *rawConn) sendMessages(domain, to, tag string, n int) error {
	const batch = 200
	var b bytes.Buffer
	for i := 0; i < n; i += batch {
		b.Reset()
		for k := i; k < min(n, i+batch); k++ {
			fmt.Fprintf(&b, "<message to='%s' type='chat' id='%s-%d'><body>catch-up message %d: some text of an ordinary length for a chat line</body></message>", to, tag, k, k)
		}
		if _, err := r.c.Write(b.Bytes()); err != nil {
			return err
		}
		// Keep what the server sends back (errors for the offline
		// recipient, if any) from piling up unread.
		if i%(batch*10) == 0 {
			if err := r.ping(domain, tag+"-ping-"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
	}
	return r.ping(domain, tag+"-ping-end")
}

// rawPass is one pass of the raw client over the archive.
type rawPass struct {
	took       time.Duration
	pages      int
	results    int
	maxPerPage int
}

// rawCatchup logs in (untimed), then pages through the whole archive with
// the query pipebind's mamsync sends (a MAM 2 form, RSM <max>pageSize and
// <after> the previous page's <last>), one query after the other, and
// only scans each answer for its <fin>: no parsing, no storing.
func rawCatchup(ctx context.Context, addr string, tlsCfg *tls.Config, domain, user, password string, pageSize int) (rawPass, error) {
	var p rawPass
	r, err := rawDial(ctx, addr, tlsCfg)
	if err != nil {
		return p, err
	}
	defer r.close()
	if err := r.login(domain, user, password); err != nil {
		return p, err
	}
	resultTag := []byte("<result ")
	t0 := time.Now()
	after := ""
	for page := 1; ; page++ {
		q := "<iq type='set' id='q" + strconv.Itoa(page) + "'><query xmlns='urn:xmpp:mam:2' queryid='q" + strconv.Itoa(page) +
			"'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field></x>" +
			"<set xmlns='http://jabber.org/protocol/rsm'><max>" + strconv.Itoa(pageSize) + "</max>"
		if after != "" {
			q += "<after>" + after + "</after>" // ids are XML-safe as read: copied verbatim
		}
		q += "</set></query></iq>"
		if err := r.write(q); err != nil {
			return p, err
		}
		i, err := r.until([]byte("<fin"))
		if err != nil {
			return p, err
		}
		k := bytes.Count(r.buf[:i], resultTag)
		p.results += k
		p.maxPerPage = max(p.maxPerPage, k)
		r.consume(i)
		end, err := r.until([]byte("</iq>"))
		if err != nil {
			return p, err
		}
		fin := slices.Clone(r.buf[:end])
		r.consume(end)
		p.pages++
		startEnd := bytes.IndexByte(fin, '>')
		if bytes.Contains(fin[:startEnd], []byte("complete='true'")) || bytes.Contains(fin[:startEnd], []byte(`complete="true"`)) {
			break
		}
		a, b := bytes.Index(fin, []byte("<last>")), bytes.Index(fin, []byte("</last>"))
		if a < 0 || b < a {
			return p, fmt.Errorf("page %d: no <last> in an incomplete <fin>", page)
		}
		next := string(fin[a+len("<last>") : b])
		if next == after || k == 0 {
			return p, fmt.Errorf("page %d: no progress", page)
		}
		after = next
	}
	p.took = time.Since(t0)
	return p, nil
}
