//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func packetBench(context.Context, benchOpts, *benchReport, string, io.Writer) ([]*benchRow, error) {
	return nil, errors.New("-packet: the packet-level path emulator is Linux's")
}
