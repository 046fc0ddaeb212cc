package client

// StanzasIn is the current connection's inbound stanza count (XEP-0198 h of
// this connection), for the tests of package client_test.
func StanzasIn(c *Client) uint32 { return c.link().conn.StanzasIn() }
