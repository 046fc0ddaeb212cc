package cache

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

// fullFeatures has every field set to a value other than its zero value.
func fullFeatures() Features {
	return Features{
		Version:         FeaturesVersion,
		Domain:          "example.org",
		SeenAt:          time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC),
		DirectTLS:       true,
		StartTLS:        true,
		SASLMechanisms:  []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"},
		ChannelBindings: []string{"tls-exporter", "tls-server-end-point"},
		SASL2:           true,
		SASL2Mechanisms: []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"},
		Bind2:           true,
		Bind2Inline:     []string{"urn:xmpp:carbons:2", "urn:xmpp:csi:0", "urn:xmpp:sm:3"},
		SMInline:        true,
		FASTMechanisms:  []string{"HT-SHA-256-ENDP", "HT-SHA-256-NONE"},
		Bind2Draft:      true,
		ClassicBind:     true,
		SM:              true,
		CSI:             true,
		NoPipeline:      true,
		TLSGroup:        29,
		FastOpenDropped: 1764892800,
	}
}

func TestFullFeaturesSetsEveryField(t *testing.T) {
	// Keeps the round-trip test honest when Features gains a field.
	v := reflect.ValueOf(fullFeatures())
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("fullFeatures leaves %s zero", v.Type().Field(i).Name)
		}
	}
}

func TestFeaturesRoundTrip(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	want := fullFeatures()
	if err := db.PutFeatures(ctx, want); err != nil {
		t.Fatalf("PutFeatures: %v", err)
	}
	got, ok, err := db.Features(ctx, "EXAMPLE.org")
	if err != nil || !ok {
		t.Fatalf("Features = _, %v, %v; want ok", ok, err)
	}
	if !got.SeenAt.Equal(want.SeenAt) {
		t.Errorf("SeenAt = %v, want %v", got.SeenAt, want.SeenAt)
	}
	got.SeenAt, want.SeenAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestPutFeaturesNormalizes(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	in := Features{
		Version:        7, // overwritten
		Domain:         "Example.ORG",
		SASLMechanisms: []string{"SCRAM-SHA-256", "PLAIN", "PLAIN"},
		Bind2:          true,
	}
	before := time.Now()
	if err := db.PutFeatures(ctx, in); err != nil {
		t.Fatalf("PutFeatures: %v", err)
	}
	if in.Domain != "Example.ORG" || !slices.Equal(in.SASLMechanisms, []string{"SCRAM-SHA-256", "PLAIN", "PLAIN"}) {
		t.Errorf("PutFeatures modified its argument: %+v", in)
	}
	got, ok, err := db.Features(ctx, "example.org")
	if err != nil || !ok {
		t.Fatalf("Features = _, %v, %v; want ok", ok, err)
	}
	if got.Version != FeaturesVersion {
		t.Errorf("Version = %d, want %d", got.Version, FeaturesVersion)
	}
	if got.Domain != "example.org" {
		t.Errorf("Domain = %q, want example.org", got.Domain)
	}
	if !slices.Equal(got.SASLMechanisms, []string{"PLAIN", "SCRAM-SHA-256"}) {
		t.Errorf("SASLMechanisms = %q", got.SASLMechanisms)
	}
	if got.SeenAt.Before(before.Add(-time.Second)) || got.SeenAt.After(time.Now().Add(time.Second)) {
		t.Errorf("SeenAt = %v, want about now", got.SeenAt)
	}
	if got.SeenAt.Location() != time.UTC {
		t.Errorf("SeenAt location = %v, want UTC", got.SeenAt.Location())
	}
	if !got.Equal(in) {
		t.Errorf("stored features not Equal to the input")
	}

	var sasl2, bind2, seenAt int64
	if err := db.sql.QueryRowContext(ctx,
		`SELECT sasl2, bind2, seen_at FROM server_features WHERE domain = 'example.org'`,
	).Scan(&sasl2, &bind2, &seenAt); err != nil {
		t.Fatal(err)
	}
	if sasl2 != 0 || bind2 != 1 || seenAt != got.SeenAt.Unix() {
		t.Errorf("columns sasl2=%d bind2=%d seen_at=%d, want 0 1 %d", sasl2, bind2, seenAt, got.SeenAt.Unix())
	}
}

func TestPutFeaturesReplaces(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}
	newer := Features{Domain: "Example.org", ClassicBind: true}
	if err := db.PutFeatures(ctx, newer); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.Features(ctx, "example.org")
	if err != nil || !ok {
		t.Fatalf("Features = _, %v, %v; want ok", ok, err)
	}
	if !got.Equal(newer) {
		t.Errorf("Features = %+v, want %+v", got, newer)
	}
	list, err := db.ListFeatures(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("ListFeatures = %d entries, %v; want 1", len(list), err)
	}
}

func TestPutFeaturesEmptyDomain(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.PutFeatures(t.Context(), Features{Domain: " . "}); err == nil {
		t.Error("PutFeatures with an empty domain succeeded")
	}
}

func TestFeaturesMiss(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		domain string
		setup  string // SQL run first
	}{
		{name: "unknown domain", domain: "example.net"},
		{name: "empty domain", domain: ""},
		{
			name:   "version mismatch",
			domain: "example.org",
			setup:  `UPDATE server_features SET version = 99 WHERE domain = 'example.org'`,
		},
		{
			name:   "corrupt JSON",
			domain: "example.org",
			setup:  `UPDATE server_features SET data = '{"v":1,"domain":' WHERE domain = 'example.org'`,
		},
		{
			name:   "JSON of another version",
			domain: "example.org",
			setup:  `UPDATE server_features SET data = '{"v":99,"domain":"example.org"}' WHERE domain = 'example.org'`,
		},
		{
			name:   "JSON of the wrong type",
			domain: "example.org",
			setup:  `UPDATE server_features SET data = '[1,2,3]' WHERE domain = 'example.org'`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
				t.Fatal(err)
			}
			if tc.setup != "" {
				if _, err := db.sql.ExecContext(ctx, tc.setup); err != nil {
					t.Fatal(err)
				}
			}
			f, ok, err := db.Features(ctx, tc.domain)
			if err != nil || ok {
				t.Errorf("Features(%q) = %+v, %v, %v; want a miss", tc.domain, f, ok, err)
			}
			list, err := db.ListFeatures(ctx)
			if err != nil {
				t.Fatalf("ListFeatures: %v", err)
			}
			if tc.setup != "" && len(list) != 0 {
				t.Errorf("ListFeatures lists an unusable entry: %+v", list)
			}
		})
	}
	// The next Put heals a bad entry.
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
		t.Errorf("Features after Put = _, %v, %v; want ok", ok, err)
	}
}

func TestForgetAndListFeatures(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	for _, d := range []string{"c.example", "A.example", "b.example"} {
		if err := db.PutFeatures(ctx, Features{Domain: d, SASL2: true}); err != nil {
			t.Fatal(err)
		}
	}
	domains := func() []string {
		t.Helper()
		list, err := db.ListFeatures(ctx)
		if err != nil {
			t.Fatalf("ListFeatures: %v", err)
		}
		var ds []string
		for _, f := range list {
			ds = append(ds, f.Domain)
		}
		return ds
	}
	if got, want := domains(), []string{"a.example", "b.example", "c.example"}; !slices.Equal(got, want) {
		t.Errorf("ListFeatures domains = %q, want %q", got, want)
	}
	if err := db.ForgetFeatures(ctx, "B.Example"); err != nil {
		t.Fatalf("ForgetFeatures: %v", err)
	}
	if err := db.ForgetFeatures(ctx, "unknown.example"); err != nil {
		t.Errorf("ForgetFeatures of an unknown domain: %v", err)
	}
	if _, ok, err := db.Features(ctx, "b.example"); err != nil || ok {
		t.Errorf("Features after Forget = _, %v, %v; want a miss", ok, err)
	}
	if got, want := domains(), []string{"a.example", "c.example"}; !slices.Equal(got, want) {
		t.Errorf("ListFeatures domains = %q, want %q", got, want)
	}
}

func TestClosed(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := db.Features(ctx, "example.org"); !errors.Is(err, ErrClosed) {
		t.Errorf("Features after Close: %v, want ErrClosed", err)
	}
	if err := db.PutFeatures(ctx, fullFeatures()); !errors.Is(err, ErrClosed) {
		t.Errorf("PutFeatures after Close: %v, want ErrClosed", err)
	}
	if err := db.ForgetFeatures(ctx, "example.org"); !errors.Is(err, ErrClosed) {
		t.Errorf("ForgetFeatures after Close: %v, want ErrClosed", err)
	}
	if _, err := db.ListFeatures(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ListFeatures after Close: %v, want ErrClosed", err)
	}
	if _, err := db.InstallationID(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("InstallationID after Close: %v, want ErrClosed", err)
	}
}
