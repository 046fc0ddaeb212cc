package client

import "fmt"

// Status is a client's state, as Client.Status reports it.
type Status uint8

// The states of a Client. Dial returns a client that is StatusOnline.
const (
	// StatusOnline: logged in, the connection up; Send writes at once.
	StatusOnline Status = iota + 1
	// StatusReconnecting: the connection dropped and Config.Reconnect is
	// logging in again; Send waits for it.
	StatusReconnecting
	// StatusClosed: the client has stopped for good, after Close or a
	// failure (Err says which); Done is closed once its callbacks end.
	StatusClosed
)

// String returns "online", "reconnecting" or "closed".
func (s Status) String() string {
	switch s {
	case StatusOnline:
		return "online"
	case StatusReconnecting:
		return "reconnecting"
	case StatusClosed:
		return "closed"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler (the String).
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Status reports the client's state now. It is a snapshot: a connection
// that has just dropped may still read StatusOnline until the client has
// noticed (OnEvent then hears EventOffline); to wait for a change, use
// OnEvent or Done.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return StatusClosed
	}
	select {
	case <-c.ended:
		return StatusClosed
	default:
	}
	select {
	case <-c.online:
		return StatusOnline
	default:
		return StatusReconnecting
	}
}
