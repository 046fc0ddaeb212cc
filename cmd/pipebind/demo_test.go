package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"demo"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	first, second, ok := strings.Cut(out, "2. second login")
	if !ok {
		t.Fatalf("no second login in:\n%s", out)
	}
	for _, want := range []string{"features     network", "round trips  2 after TLS"} {
		if !strings.Contains(first, want) {
			t.Errorf("first login lacks %q:\n%s", want, first)
		}
	}
	for _, want := range []string{"features     cache", "round trips  1 after TLS", "path         sasl2"} {
		if !strings.Contains(second, want) {
			t.Errorf("second login lacks %q:\n%s", want, second)
		}
	}
	if strings.Contains(out, "demo-password") {
		t.Error("the demo prints the password")
	}
}
