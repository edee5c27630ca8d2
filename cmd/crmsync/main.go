// Command crmsync is the sync engine between Conversion and a CRM: one
// binary that serves the GraphQL API and runs the sync workers (serve),
// migrates the database (migrate) and administers workspaces and API tokens.
// Run `crmsync --help` for the commands and their configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/crmsync/crmsync/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var exit exitError
	switch {
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case err != nil:
		fmt.Fprintln(os.Stderr, "crmsync:", err)
		os.Exit(1)
	}
}

// exitError is a non-zero exit status chosen by the CLI parser (for
// example 2 for a usage error) after it printed its own message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// env is what every command runs with; kong binds it into Run methods.
type env struct {
	ctx    context.Context //nolint:containedctx // the command's lifetime, handed to Run by kong
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	global *config.Global
	// progress, when set, is told each slow step before it starts (the
	// demo prints them, so a newcomer sees what it is waiting for).
	progress func(step string)
}

// step reports a slow step about to start, if anyone listens.
func (e *env) step(format string, args ...any) {
	if e.progress != nil {
		e.progress(fmt.Sprintf(format, args...))
	}
}

// exitPanic carries kong's exit code out of a --help.
type exitPanic struct{ code int }

// run parses args and runs the chosen command until it ends or ctx is
// cancelled (SIGINT/SIGTERM in main). getenv replaces os.Getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("crmsync"),
		kong.Description("crmsync syncs Conversion's contacts, companies and campaigns with a CRM (Salesforce first)."),
		kong.Writers(stdout, stderr),
		kong.Resolvers(config.Resolver(getenv)),
		kong.Exit(func(code int) { panic(exitPanic{code}) }),
	)
	if err != nil {
		return fmt.Errorf("build command line: %w", err)
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		p, ok := r.(exitPanic)
		if !ok {
			panic(r)
		}
		err = nil
		if p.code != 0 {
			err = exitError(p.code)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		return err
	}
	if err := c.Global.Validate(); err != nil {
		return err
	}
	return kctx.Run(&env{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr, global: &c.Global})
}

// withProgress returns a copy of e that reports its slow steps to progress.
func (e *env) withProgress(progress func(step string)) *env {
	c := *e
	c.progress = progress
	return &c
}
