// Command patronus runs the Patronus statistics and inventory service of an SD-WAN.
//
//	patronus [serve]       run the API, collector and history flush (the default)
//	patronus migrate       apply database migrations and exit
//	patronus token create  issue an API token and print it once
//	patronus version       print the version
//
// Every setting is a flag and a PATRONUS_* environment variable; flags win.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/patronus-sdwan/patronus/storage"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module
// version or VCS revision is used.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "patronus:", oneLine(err))
		os.Exit(1)
	}
}

// oneLine folds a (possibly joined) error onto one line for the start-up message.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// run parses args into a command and runs it until ctx is cancelled or the command returns.
//
// The flag package prints a command's usage on any parse error; it goes to a buffer that is
// shown only when help was asked for, so a bad setting is one line, not the whole usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var help bytes.Buffer
	failed := new(settingFailure)
	root := newCommand(stdout, stderr, &help, failed)
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = io.Copy(stderr, &help)
			return err
		}
		return parseError(err, failed, "patronus")
	}
	return root.Run(ctx)
}

func newCommand(stdout, stderr io.Writer, help io.Writer, failed *settingFailure) *ffcli.Command {
	// serve and the root read the full configuration; migrate and token create only what they
	// use, so their help lists only their own settings.
	newFlags := func(name string) (*flag.FlagSet, *config) {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(help)
		c := new(config)
		registerFlags(fs, c)
		checkValues(fs, failed)
		return fs, c
	}
	databaseFlags := func(name string) (*flag.FlagSet, *config) {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(help)
		c := new(config)
		fs.StringVar(&c.DatabaseURL, "database-url", storage.DefaultDatabaseURL, "inventory database: a SQLite file path, or a postgres:// URL")
		return fs, c
	}
	serveFS, serveCfg := newFlags("patronus serve")
	serveCmd := &ffcli.Command{
		Name: "serve", ShortUsage: "patronus serve [flags]", ShortHelp: "run the service (the default command)",
		FlagSet: serveFS, Options: envOptions(), UsageFunc: usage,
		Exec: func(ctx context.Context, _ []string) error {
			if err := serveCfg.validate(); err != nil {
				return err
			}
			return serve(ctx, *serveCfg, stderr)
		},
	}
	migrateFS, migrateCfg := databaseFlags("patronus migrate")
	migrateCmd := &ffcli.Command{
		Name: "migrate", ShortUsage: "patronus migrate [flags]", ShortHelp: "apply database migrations and exit",
		FlagSet: migrateFS, Options: envOptions(), UsageFunc: usage,
		Exec: func(ctx context.Context, _ []string) error {
			return migrate(ctx, *migrateCfg, stdout, stderr)
		},
	}
	tokenFS, tokenCfg := databaseFlags("patronus token create")
	tokenName := tokenFS.String("name", "", "token name, shown as the actor in the audit log (required)")
	tokenRole := tokenFS.String("role", "viewer", "token role: viewer, operator or admin")
	tokenCreate := &ffcli.Command{
		Name: "create", ShortUsage: "patronus token create --name NAME --role viewer|operator|admin", ShortHelp: "issue an API token and print it once",
		FlagSet: tokenFS, Options: envOptions(), UsageFunc: usage,
		Exec: func(ctx context.Context, _ []string) error {
			if strings.TrimSpace(*tokenName) == "" {
				return errors.New("--name: is required; use e.g. --name grafana-reader")
			}
			if !storage.ValidRole(*tokenRole) {
				return fmt.Errorf("--role: %q is not a role; use viewer, operator or admin", *tokenRole)
			}
			return createToken(ctx, *tokenCfg, *tokenName, *tokenRole, stdout, stderr)
		},
	}
	tokenCmd := &ffcli.Command{
		Name: "token", ShortUsage: "patronus token create [flags]", ShortHelp: "manage API tokens",
		Subcommands: []*ffcli.Command{tokenCreate},
		Exec:        func(context.Context, []string) error { return flag.ErrHelp },
	}
	versionCmd := &ffcli.Command{
		Name: "version", ShortUsage: "patronus version", ShortHelp: "print the version",
		Exec: func(context.Context, []string) error {
			_, err := fmt.Fprintln(stdout, "patronus", buildVersion())
			return err
		},
	}
	rootFS, rootCfg := newFlags("patronus")
	return &ffcli.Command{
		ShortUsage: "patronus [serve|migrate|token create|version] [flags]",
		LongHelp:   "Patronus: traffic statistics and inventory backend of an SD-WAN.\nWith no command it serves. Every flag is also a PATRONUS_* environment variable; a flag wins.",
		FlagSet:    rootFS, Options: envOptions(), UsageFunc: usage,
		Subcommands: []*ffcli.Command{serveCmd, migrateCmd, tokenCmd, versionCmd},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q (want serve, migrate, token or version)", args[0])
			}
			if err := rootCfg.validate(); err != nil {
				return err
			}
			return serve(ctx, *rootCfg, stderr)
		},
	}
}

// usage prints a command's help with, for every flag, its environment variable and default.
func usage(c *ffcli.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "USAGE\n  %s\n\n", c.ShortUsage)
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.LongHelp)
	}
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "COMMANDS\n")
		tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
		for _, sub := range c.Subcommands {
			fmt.Fprintf(tw, "  %s\t%s\n", sub.Name, sub.ShortHelp)
		}
		tw.Flush()
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "SETTINGS (flag, environment variable, default)\n")
	tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
	c.FlagSet.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", f.Name, envName(f.Name), def, f.Usage)
	})
	tw.Flush()
	return b.String()
}

func envOptions() []ff.Option {
	return []ff.Option{ff.WithEnvVarPrefix(envPrefix)}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// newLogger builds the service logger from the log settings.
func newLogger(c config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
