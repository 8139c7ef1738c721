package main

import (
	"strings"
	"testing"
)

// The valid case is tested with a generated BLOB in providers/webauthn
// (TestParseMDS); here: the command's errors and exit codes.
func TestWebAuthnMDSCheck(t *testing.T) {
	if code, _, errOut := runCmd(t, nil, "webauthn"); code != 2 || !strings.Contains(errOut, "mds-check") {
		t.Errorf("no command: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd(t, nil, "webauthn", "mds-check"); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
	blob := writeFile(t, "mds.jwt", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	code, _, errOut := runCmd(t, nil, "webauthn", "mds-check", blob)
	if code != 2 || !strings.Contains(errOut, "mds:") {
		t.Errorf("forged BLOB: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd(t, nil, "webauthn", "mds-check", "--help"); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}
