package login

import (
	"encoding/json"
	"fmt"
	"time"
)

// String describes t without its secret, so that printing or logging a
// Token never leaks it.
func (t Token) String() string {
	return fmt.Sprintf("FAST token for %s, expires %s, secret redacted", t.Mechanism, t.Expiry.UTC().Format(time.RFC3339))
}

// GoString is String: %#v does not print the secret either.
func (t Token) GoString() string { return t.String() }

// MarshalJSON writes the mechanism and expiry, never the secret.
func (t Token) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Mechanism string    `json:"mechanism"`
		Expiry    time.Time `json:"expiry"`
	}{t.Mechanism, t.Expiry.UTC()})
}
