package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
)

// report is the JSON form of a login, stable for scripts.
type report struct {
	JID        string        `json:"jid"`
	Path       login.Path    `json:"path"`
	Features   login.Source  `json:"features"`
	Mechanism  string        `json:"mechanism"`
	RoundTrips int           `json:"round_trips"`
	StartTLSRT int           `json:"starttls_round_trips,omitempty"`
	Attempts   int           `json:"attempts"`
	Addr       string        `json:"addr"`
	DirectTLS  bool          `json:"direct_tls"`
	TLSVersion string        `json:"tls_version"`
	SM         login.SMState `json:"sm"`
	Carbons    bool          `json:"carbons"`
	ScramCache bool          `json:"scram_keys_cached"`
	FAST       bool          `json:"fast"`
	// PasswordChecked is false when a FAST token or cached SCRAM keys
	// stood in for the password: the login says nothing about it
	// (-verify-password checks it). Credential names what logged in:
	// password, fast-token or scram-keys.
	PasswordChecked bool   `json:"password_checked"`
	Credential      string `json:"credential"`
	// FASTRejected is the condition of a refused token (the password was
	// used instead).
	FASTRejected string `json:"fast_rejected,omitempty"`
	// FASTIssued describes a token issued on this login (never the secret).
	FASTIssued   *login.Token       `json:"fast_issued,omitempty"`
	Resumed      bool               `json:"sm_resumed"`
	ResumeFailed string             `json:"sm_resume_failed,omitempty"`
	BytesOut     int64              `json:"bytes_out"`
	BytesIn      int64              `json:"bytes_in"`
	TimingsMS    map[string]float64 `json:"timings_ms"`
	// TFO says whether the SYN carried data and the server accepted it;
	// KeyShare which key shares the ClientHello carried, and the group.
	TFO      client.FastOpen `json:"tfo"`
	KeyShare client.KeyShare `json:"key_share"`
	// LatestID and Unreads come from a v0.3.0 <bound>: null when the server
	// did not report them, [] when it tracks unreads and there are none.
	LatestID *string        `json:"latest_id"`
	Unreads  []login.Unread `json:"unreads"`
	// CacheFault is what was wrong with the cache file (null when
	// nothing), Warnings every warning of the client (without -v).
	CacheFault *cacheFault `json:"cache_fault"`
	Warnings   []string    `json:"warnings"`
}

func newReport(info client.Info, warn *warnings) report {
	var latest *string
	var unreads []login.Unread
	if d := info.Draft; d != nil {
		if d.LatestID != "" {
			latest = &d.LatestID
		}
		unreads = d.Unreads
	}
	r := report{
		LatestID:        latest,
		Unreads:         unreads,
		JID:             info.JID.String(),
		Path:            info.Path,
		Features:        info.Source,
		Mechanism:       info.Mechanism,
		RoundTrips:      info.RoundTrips,
		StartTLSRT:      info.StartTLSRoundTrips,
		Attempts:        info.Attempts,
		Addr:            info.Addr,
		DirectTLS:       info.DirectTLS,
		TLSVersion:      info.TLSVersion,
		SM:              info.SM,
		Carbons:         info.Carbons,
		ScramCache:      info.ScramKeysCached,
		FAST:            info.FAST,
		PasswordChecked: info.PasswordChecked(),
		Credential:      info.Credential(),
		CacheFault:      newCacheFault(info.CacheFault),
		Warnings:        []string{},
		FASTRejected:    info.TokenRejected,
		FASTIssued:      redacted(info.NewToken),
		Resumed:         info.Resumed,
		ResumeFailed:    info.ResumeFailed,
		BytesOut:        info.BytesOut,
		BytesIn:         info.BytesIn,
		TFO:             info.FastOpen,
		KeyShare:        info.KeyShare,
		TimingsMS: map[string]float64{
			"cache":    ms(info.Timings.Cache),
			"wait":     ms(info.Timings.CacheWait),
			"lookup":   ms(info.Timings.Lookup),
			"dial":     ms(info.Timings.Connect),
			"starttls": ms(info.Timings.StartTLS),
			"tls":      ms(info.Timings.TLS),
			"login":    ms(info.Timings.Login),
			"total":    ms(info.Timings.Total),
		},
	}
	if warn != nil {
		r.Warnings = warn.list()
	}
	return r
}

// redacted drops a token's secret (Info never holds it; belt and braces).
func redacted(t *login.Token) *login.Token {
	if t == nil {
		return nil
	}
	return &login.Token{Mechanism: t.Mechanism, Expiry: t.Expiry}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// printReport writes the human-readable report of one login; given says
// that the user gave a password ($PIPEBIND_PASSWORD), which a token or
// cached keys may have left unchecked.
func printReport(w io.Writer, info client.Info, given bool) {
	tlsMode := "STARTTLS"
	if info.DirectTLS {
		tlsMode = "Direct TLS"
	}
	sm := "off"
	if info.SM.Enabled {
		sm = "enabled"
		if info.SM.Resumable {
			sm += ", resumable"
		}
	}
	switch {
	case info.Resumed:
		sm = fmt.Sprintf("resumed (server had %d of our stanzas)", info.ResumedH)
	case info.ResumeFailed != "":
		sm += fmt.Sprintf(" (resume refused: %s; new session)", info.ResumeFailed)
	}
	carbons := "off"
	if info.Carbons {
		carbons = "enabled"
	}
	attempts := ""
	if info.Attempts > 1 {
		attempts = fmt.Sprintf(" (stale cache: %d attempts)", info.Attempts)
	}
	fmt.Fprintf(w, "  bound        %s\n", info.JID)
	fmt.Fprintf(w, "  path         %s\n", info.Path)
	fmt.Fprintf(w, "  features     %s%s\n", info.Source, attempts)
	scram := ""
	if info.ScramKeysCached {
		scram = " (cached keys: no PBKDF2)"
	}
	if info.FAST {
		scram = " (FAST token: no password)"
	}
	fmt.Fprintf(w, "  mechanism    %s%s\n", info.Mechanism, scram)
	fmt.Fprintf(w, "  password     %s\n", passwordLine(info, given))
	if info.TokenRejected != "" {
		fmt.Fprintf(w, "  fast         token refused (%s); password used, token deleted\n", info.TokenRejected)
	}
	if t := info.NewToken; t != nil {
		fmt.Fprintf(w, "  fast         token issued for %s, expires %s (stored)\n", t.Mechanism, t.Expiry.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  round trips  %d after TLS", info.RoundTrips)
	if info.StartTLSRoundTrips > 0 {
		fmt.Fprintf(w, " (+%d for STARTTLS)", info.StartTLSRoundTrips)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  address      %s (%s, %s)\n", info.Addr, tlsMode, info.TLSVersion)
	fmt.Fprintf(w, "  handshake    %s\n", handshakeLine(info))
	fmt.Fprintf(w, "  stream mgmt  %s\n", sm)
	fmt.Fprintf(w, "  carbons      %s\n", carbons)
	fmt.Fprintf(w, "  bytes        %d out, %d in after TLS\n", info.BytesOut, info.BytesIn)
	if d := info.Draft; d != nil {
		fmt.Fprintf(w, "  latest-id    %s\n", orNone(d.LatestID))
		switch {
		case d.Unreads == nil:
			fmt.Fprintln(w, "  unreads      not tracked by the server")
		case len(d.Unreads) == 0:
			fmt.Fprintln(w, "  unreads      none")
		default:
			for i, u := range d.Unreads {
				label := ""
				if i == 0 {
					label = "unreads"
				}
				fmt.Fprintf(w, "  %-12s %s: %d after %s\n", label, u.JID, u.Count, orNone(u.ReadID))
			}
		}
	}
	fmt.Fprintln(w, "  waterfall")
	waterfall(w, info.Timings)
}

// passwordLine says plainly whether the server checked the password.
func passwordLine(info client.Info, given bool) string {
	if info.PasswordChecked() {
		return "checked by the server"
	}
	by := "a FAST token from the cache"
	if !info.FAST {
		by = "SCRAM keys from the cache"
	}
	if given {
		return "NOT checked: " + by + " logged in, the password given was not used (-verify-password checks it)"
	}
	return "not used: " + by + " logged in (-verify-password checks the password)"
}

// waterfall draws the phases of a login on one time axis. The cache reads
// run alongside the lookup, connect and TLS handshake, so "cache" starts
// at 0 beside them; "wait" is the part of them the login waited for, on
// its critical path, before its first write after TLS.
func waterfall(w io.Writer, t client.Timings) {
	phases := []struct {
		name    string
		d       time.Duration
		overlap bool // drawn from 0, not after the phase before
	}{
		{"cache", t.Cache, true}, {"lookup", t.Lookup, false}, {"dial", t.Connect, false}, {"starttls", t.StartTLS, false},
		{"tls", t.TLS, false}, {"wait", t.CacheWait, false}, {"login", t.Login, false},
	}
	total := t.Total
	if total <= 0 {
		return
	}
	const width = 40
	var at time.Duration
	for _, p := range phases {
		if p.d <= 0 {
			continue
		}
		start := at
		if p.overlap {
			start = 0
		}
		from := int(int64(start) * width / int64(total))
		n := int(int64(p.d) * width / int64(total))
		if n == 0 {
			n = 1
		}
		if from+n > width {
			n = max(width-from, 1)
			from = width - n
		}
		fmt.Fprintf(w, "    %-8s |%s%s%s| %8.1f ms\n", p.name,
			strings.Repeat(" ", from), strings.Repeat("█", n), strings.Repeat(" ", width-from-n), ms(p.d))
		if !p.overlap {
			at += p.d
		}
	}
	fmt.Fprintf(w, "    %-8s  %s  %8.1f ms\n", "total", strings.Repeat(" ", width), ms(total))
}

// handshakeLine says what TCP Fast Open did and which key shares the
// ClientHello carried.
func handshakeLine(info client.Info) string {
	fo := info.FastOpen
	tfo := "TCP Fast Open off"
	switch {
	case fo.Backoff:
		tfo = "TCP Fast Open off for now (SYN data dropped recently)"
	case fo.Accepted:
		tfo = "TCP Fast Open: ClientHello in the SYN, accepted"
	case fo.Requested:
		tfo = "TCP Fast Open: not used (" + orNone(fo.Fail.String()) + ")"
	}
	ks := info.KeyShare
	return fmt.Sprintf("%s; key shares %s (%s, %d-byte ClientHello), %s negotiated", tfo,
		strings.Join(ks.Offered, "+"), ks.Policy, ks.HelloBytes, ks.Group)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// oneLine folds an error onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
