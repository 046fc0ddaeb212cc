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
	if code := run(ctx, []string{"demo", "-rtt", "-1s"}, &stdout, &stderr); code != 1 {
		t.Errorf("negative -rtt: exit %d", code)
	}
}
