// Command fhirserver is the FHIR R4 server and exchange hub: `fhirserver serve`
// runs it, `fhirserver import` loads Bundles and NDJSON files into it,
// `fhirserver clients|users|keys` manage its SMART authorization server,
// `fhirserver version` prints the version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if os.Getenv("GOGC") == "" {
		// The server allocates short-lived request garbage; collecting half
		// as often costs little memory and a measurable share of CPU.
		debug.SetGCPercent(200)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fhirserver:", err)
		}
		os.Exit(2)
	}
}

const usage = `fhirserver — FHIR R4 server and health information exchange hub

Usage:
  fhirserver serve [flags]            run the server (fhirserver serve -h lists the flags)
  fhirserver import [flags] PATH...   load FHIR Bundles and NDJSON files, into a running
                                      server (--server URL) or straight into a data
                                      directory (fhirserver import -h tells more)
  fhirserver clients add|list|remove  manage the SMART apps and services allowed in
  fhirserver users add|list|remove    manage the people who log in (fhirserver clients -h)
  fhirserver keys rotate              make a new token signing key
  fhirserver version                  print the version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := parseServeFlags(args[1:], os.Getenv, stderr)
		if err != nil {
			return err
		}
		m := NewMain(cfg, stderr)
		return m.Run(ctx)
	case "import":
		return runImport(ctx, args[1:], os.Getenv, stdout, stderr)
	case "clients", "users", "keys":
		return runAuthCommand(ctx, args[0], args[1:], os.Getenv, os.Stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "fhirserver", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
