package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/trustbroker/trustbroker/providers/webauthn"
)

const webauthnUsage = `Usage: trustbroker webauthn mds-check [--root PEM] FILE

Validates a FIDO Metadata Service (MDS3) BLOB file before it replaces the
one a webauthn provider reads (config mds_file): the JWS signature and
its certificate chain to the root (--root, as mds_root_file; default the
FIDO Alliance root), and the entries. The broker reads the BLOB at start:
replace the file, then restart (or roll) the broker to load it.
`

func (e env) webauthnCmd(args []string) error {
	if len(args) == 0 || args[0] != "mds-check" {
		fmt.Fprint(e.stderr, webauthnUsage)
		return errConfig{errors.New("webauthn: name mds-check and a file")}
	}
	fs := flag.NewFlagSet("webauthn mds-check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), webauthnUsage) }
	root := fs.String("root", "", "PEM or DER `file` of the BLOB's root certificate (default: the FIDO Alliance root)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errConfig{errors.New("webauthn mds-check: name exactly one file")}
	}
	m, err := webauthn.LoadMDSFile(fs.Arg(0), *root)
	if err != nil {
		return errConfig{err}
	}
	fmt.Fprintf(e.stdout, "%s: BLOB no. %d is valid: %d entries by AAGUID, %d unreadable (skipped), next update %s\n",
		fs.Arg(0), m.Number, m.Entries, m.Unparsed, m.NextUpdate.Format(time.DateOnly))
	if time.Now().After(m.NextUpdate) {
		fmt.Fprintf(e.stdout, "warning: the next update was due on %s; a newer BLOB should be available\n", m.NextUpdate.Format(time.DateOnly))
	}
	return nil
}
