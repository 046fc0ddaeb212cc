package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"demo", "-rtt", "4ms"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	// Each path, cold then warm: the round trips counted on the connection.
	for _, want := range []string{
		`classic\s+cold\s+5\s.*network`,
		`classic\s+warm\s+4\s.*cache`,
		`bind2-draft\s+cold\s+2\s.*network`,
		`bind2-draft\s+warm\s+1\s.*cache`,
		`sasl2\s+cold\s+2\s.*network`,
		`sasl2\s+warm\s+1\s.*cache`,
		`(?m)^\s+sasl2\s+warm \|[ ct]*1+ *\|`,
		`2 unread from bob@localhost after`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "demo-password") {
		t.Error("the demo prints the password")
	}
	// The README's "first contact: 2 with PLAIN, 3 with SCRAM (the
	// default)"; warm, the FAST token the first login obtained: 1.
	stdout.Reset()
	if code := run(ctx, []string{"demo", "-rtt", "2ms", "-mech", "SCRAM-SHA-256"}, &stdout, &stderr); code != 0 {
		t.Fatalf("demo SCRAM: exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{`sasl2\s+cold\s+3\s.*network`, `sasl2\s+warm\s+1\s.*cache`} {
		if !regexp.MustCompile(want).MatchString(stdout.String()) {
			t.Errorf("demo -mech SCRAM-SHA-256 output lacks %q:\n%s", want, stdout.String())
		}
	}
	if code := run(ctx, []string{"demo", "-rtt", "-1s"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("negative -rtt: exit %d", code)
	}
}
