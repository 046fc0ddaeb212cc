package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"
)

// UnansweredError is the error of a request (an IQ: SendIQ, Flush,
// MarkDisplayed) whose connection ended before the server answered it.
// The server may or may not have acted on the request, so it is not safe
// to retry as it is (SafeToRetry is false), unless the request is
// idempotent (a get, a ping). It matches what ended the connection: a
// *DropError (ErrConnection), ErrClosed, a stream error.
type UnansweredError struct {
	// Err is why the connection ended.
	Err error
}

func (e *UnansweredError) Error() string {
	return "client: the connection ended before the server answered: " + e.Err.Error()
}

func (e *UnansweredError) Unwrap() error { return e.Err }

// SafeToRetry reports false: the server may have acted on the request.
func (e *UnansweredError) SafeToRetry() bool { return false }

// errLinkEnded is the cause of a request's context when its link ended.
var errLinkEnded = errors.New("client: the connection ended")

// request bounds one request of the client's on this link: by ctx, by
// Config.RequestTimeout, and by the link itself, because mellium's SendIQ
// waits for its answer until its context ends, even once the session is
// gone. The caller passes the request's error through finish, which
// releases the context and turns an error due to the link's end into an
// *UnansweredError.
func (c *link) request(ctx context.Context) (context.Context, func(error) error) {
	base, cancel := context.WithCancelCause(ctx)
	rctx, stopTimer := base, context.CancelFunc(func() {})
	if d := c.cfg.requestTimeout(); d > 0 {
		rctx, stopTimer = context.WithTimeout(base, d)
	}
	stopWatch := context.AfterFunc(c.ctx, func() { cancel(errLinkEnded) })
	return rctx, func(err error) error {
		stopWatch()
		ended := errors.Is(context.Cause(rctx), errLinkEnded)
		stopTimer()
		cancel(nil)
		if err == nil || !ended {
			return requestError(err)
		}
		<-c.done // the link's cause is set once its session has ended
		return &UnansweredError{Err: c.Err()}
	}
}

// SendIQ sends an IQ request (a stanza.IQ of type get or set, wrapped
// around its payload) and returns the server's answer, a result or an
// error IQ, for the caller to read and close, like mellium's
// Session.SendIQ (whose answer routing it uses). Unlike that, it is
// bounded by Config.RequestTimeout (ErrTimeout) and by the connection: if
// the connection ends before the answer, it returns at once with an
// *UnansweredError. While the client reconnects it waits for it, as Send
// does. It does not send the request again on another connection.
func (c *Client) SendIQ(ctx context.Context, iq xml.TokenReader) (xmlstream.TokenReadCloser, error) {
	l, err := c.waitOnline(ctx)
	if err != nil {
		return nil, err
	}
	rctx, finish := l.request(ctx)
	resp, err := l.sess.SendIQ(rctx, iq)
	if err = finish(err); err != nil {
		return nil, err
	}
	return resp, nil
}

// requestError marks a request's deadline, Config.RequestTimeout or the
// caller's, as ErrTimeout (it still matches context.DeadlineExceeded).
func requestError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("client: no answer in time: %w: %w", ErrTimeout, err)
	}
	return err
}
