package client

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"

	"mellium.im/xmpp/jid"
)

// fakeResolver answers SRV lookups from a table.
type fakeResolver map[string][]*net.SRV

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	recs, ok := f["_"+service+"._"+proto+"."+name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return "", recs, nil
}

func TestResolve(t *testing.T) {
	j := jid.MustParse("alice@example.org")
	for _, tc := range []struct {
		name string
		cfg  Config
		want []target
	}{
		{"both sets merged by priority, direct first on ties", Config{JID: j, Resolver: fakeResolver{
			"_xmpps-client._tcp.example.org": {{Target: "tls.example.org.", Port: 5223, Priority: 10}},
			"_xmpp-client._tcp.example.org":  {{Target: "a.example.org.", Port: 5222, Priority: 5}, {Target: "b.example.org.", Port: 5222, Priority: 10}},
		}}, []target{{addr: "a.example.org:5222"}, {addr: "tls.example.org:5223", direct: true}, {addr: "b.example.org:5222"}}},
		{"dot target means unavailable", Config{JID: j, Resolver: fakeResolver{
			"_xmpps-client._tcp.example.org": {{Target: ".", Port: 0}},
			"_xmpp-client._tcp.example.org":  {{Target: "x.example.org.", Port: 5222}},
		}}, []target{{addr: "x.example.org:5222"}}},
		{"no records: domain 5222", Config{JID: j, Resolver: fakeResolver{}}, []target{{addr: "example.org:5222"}}},
		{"forced direct ignores xmpp-client", Config{JID: j, TLS: TLSDirect, Resolver: fakeResolver{
			"_xmpp-client._tcp.example.org": {{Target: "x.example.org.", Port: 5222}},
		}}, []target{{addr: "example.org:5223", direct: true}}},
		{"addr, no cache: direct with STARTTLS fallback", Config{JID: j, Addr: "127.0.0.1:1"}, []target{{addr: "127.0.0.1:1", direct: true, fallback: true}}},
		{"addr, starttls", Config{JID: j, Addr: "[::1]:5222", TLS: TLSStartTLS}, []target{{addr: "[::1]:5222"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolve(context.Background(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := resolve(context.Background(), Config{JID: j, Addr: "no-port"}, nil); err == nil {
		t.Error("Addr without a port accepted")
	}
}

func TestDialValidatesConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := Dial(ctx, Config{JID: jid.MustParse("example.org"), Password: "x"}); err == nil {
		t.Error("a JID without localpart was accepted")
	}
	if _, err := Dial(ctx, Config{JID: jid.MustParse("a@example.org")}); err == nil {
		t.Error("a config without password was accepted")
	}
	wantErr := errors.New("keyring locked")
	_, err := Dial(ctx, Config{JID: jid.MustParse("a@example.org"), Addr: "127.0.0.1:1",
		PasswordFunc: func(context.Context) (string, error) { return "", wantErr }})
	if !errors.Is(err, wantErr) {
		t.Errorf("PasswordFunc error: got %v", err)
	}
}
