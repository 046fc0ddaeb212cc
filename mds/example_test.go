package mds_test

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/mds"
)

// Fetch on a served session; an account that never published a marker
// (or a server without PEP) answers with an IQ error.
func ExampleFetch() {
	var sess *xmpp.Session // logged in, its Serve loop running (client.Client.Session)
	markers, err := mds.Fetch(context.TODO(), sess)
	switch {
	case errors.Is(err, stanza.Error{Condition: stanza.ItemNotFound}):
		fmt.Println("no markers yet")
	case err != nil:
		fmt.Println(err)
	}
	for _, m := range markers {
		fmt.Printf("%s: read up to %s\n", m.Peer, m.StanzaID)
	}
}
