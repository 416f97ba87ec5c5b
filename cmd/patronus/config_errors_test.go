package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrorsAreOneLineWithTheExpectedForm runs the real command with a bad setting of
// each kind, by flag and by environment variable: one line, naming the setting as given and
// what it expects, and no usage text.
func TestConfigErrorsAreOneLineWithTheExpectedForm(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  [2]string
		want string
	}{
		{"duration flag", []string{"--flush-interval", "10"}, [2]string{}, `--flush-interval: "10" is not a duration; use e.g. 10s`},
		{"duration env", nil, [2]string{"PATRONUS_FLUSH_INTERVAL", "10"}, `PATRONUS_FLUSH_INTERVAL: "10" is not a duration; use e.g. 10s`},
		{"int env", nil, [2]string{"PATRONUS_MAX_FLOWS", "lots"}, `PATRONUS_MAX_FLOWS: "lots" is not a whole number; use e.g. 1000000`},
		{"byte size flag", []string{"serve", "--spool-max-bytes", "big"}, [2]string{}, `--spool-max-bytes: "big" is not a size in bytes; use e.g. 32MiB, 1GiB or 1073741824`},
		{"byte size env", nil, [2]string{"PATRONUS_MAX_INGEST_BYTES", "-5MiB"}, `PATRONUS_MAX_INGEST_BYTES: "-5MiB" is not a size in bytes`},
		{"bool env", nil, [2]string{"PATRONUS_FEED_NOTIFY", "maybe"}, `PATRONUS_FEED_NOTIFY: "maybe" is not true or false; use true or false`},
		{"bool flag", []string{"--feed-notify=maybe"}, [2]string{}, `--feed-notify: "maybe" is not true or false`},
		{"url env", nil, [2]string{"PATRONUS_INFLUX_URL", "ftp://x"}, `PATRONUS_INFLUX_URL: "ftp://x" is not an http(s) URL; use e.g. http://`},
		{"zero duration", nil, [2]string{"PATRONUS_FLOW_IDLE_TIMEOUT", "0s"}, `PATRONUS_FLOW_IDLE_TIMEOUT: "0s" is not a positive duration; use e.g.`},
		{"zero int", []string{"--event-buffer", "0"}, [2]string{}, `PATRONUS_EVENT_BUFFER: 0 is not a positive whole number; use e.g.`},
		{"choice", nil, [2]string{"PATRONUS_LOG_FORMAT", "xml"}, `PATRONUS_LOG_FORMAT: "xml" is not a log format; use text or json`},
		{"unknown flag", []string{"--flush-intervall", "10s"}, [2]string{}, `unknown setting --flush-intervall; see patronus --help`},
		{"token role", []string{"token", "create", "--name", "x", "--role", "boss"}, [2]string{}, `--role: "boss" is not a role; use viewer, operator or admin`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if tc.env[0] != "" {
				t.Setenv(tc.env[0], tc.env[1])
			}
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, io.Discard, &stderr)
			if err == nil {
				t.Fatal("the command succeeded")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q, want one line containing %q", msg, tc.want)
			}
			if stderr.Len() > 0 {
				t.Fatalf("the command printed besides its error:\n%s", stderr.String())
			}
		})
	}
}

// TestTokenCreateHelpListsItsOwnSettings: `token create --help` shows its settings, not
// every serve setting.
func TestTokenCreateHelpListsItsOwnSettings(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"token", "create", "--help"}, io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help returned %v", err)
	}
	help := stderr.String()
	for _, want := range []string{"--name", "--role", "--database-url"} {
		if !strings.Contains(help, want) {
			t.Errorf("token create help lacks %s:\n%s", want, help)
		}
	}
	for _, serveOnly := range []string{"--flush-interval", "--listen", "--influx-url", "--spool-dir"} {
		if strings.Contains(help, serveOnly) {
			t.Errorf("token create help lists the serve setting %s:\n%s", serveOnly, help)
		}
	}
}

// TestBusyPortFailsBeforeTheDatabase: serve binds its port before it opens, migrates or warms
// anything, so a busy port fails at once, naming the setting, and leaves no database behind.
func TestBusyPortFailsBeforeTheDatabase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "patronus.db")
	err = run(context.Background(), []string{"serve", "--listen", ln.Addr().String(), "--database-url", dbFile,
		"--spool-dir", filepath.Join(dir, "spool")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PATRONUS_LISTEN") {
		t.Fatalf("serve on a busy port returned %v, want an error naming PATRONUS_LISTEN", err)
	}
	if _, err := os.Stat(dbFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve opened the database before binding its port: %v", err)
	}
}
