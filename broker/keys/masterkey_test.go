package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestParseMasterKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, MasterKeySize)
	tests := []struct {
		name, in string
		wantErr  string // substring; empty means success
	}{
		{"hex", hex.EncodeToString(raw), ""},
		{"hex upper case", strings.ToUpper(hex.EncodeToString(raw)), ""},
		{"base64 std", base64.StdEncoding.EncodeToString(raw), ""},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(raw), ""},
		{"surrounding space", "  " + base64.StdEncoding.EncodeToString(raw) + "\n", ""},
		{"empty", "", "empty"},
		{"blank", " \n", "empty"},
		{"short base64", base64.StdEncoding.EncodeToString(raw[:16]), "decodes (base64) to 16 bytes, want 32"},
		{"long base64", base64.StdEncoding.EncodeToString(append(raw, 1)), "decodes (base64) to 33 bytes, want 32"},
		{"short hex", hex.EncodeToString(raw)[:62], "has 62 hex characters, want 64"},
		{"long hex", hex.EncodeToString(raw) + "ab", "has 66 hex characters, want 64"},
		{"hex with a non-hex char", "g" + hex.EncodeToString(raw)[1:], "decodes (base64) to 48 bytes"},
		{"garbage", "not a key!", "neither base64 of 32 bytes nor 64 hex characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk, err := ParseMasterKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "keys: ") {
					t.Errorf("err %q lacks the keys: prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !mk.set || !bytes.Equal(mk.key[:], raw) {
				t.Fatalf("parsed key differs")
			}
		})
	}
}

var masterKeyErrRE = regexp.MustCompile(`^keys: master key (is empty|has \d+ hex characters, want 64|` +
	`decodes \(base64\) to \d+ bytes, want 32|\(\d+ characters\) is neither base64 of 32 bytes nor 64 hex characters)$`)

func FuzzParseMasterKey(f *testing.F) {
	raw := bytes.Repeat([]byte{7}, MasterKeySize)
	for _, s := range []string{
		hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
		"", "====", "zz", strings.Repeat("a", 43), strings.Repeat("A", 44),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mk, err := ParseMasterKey(s)
		if err != nil {
			if mk.set {
				t.Fatal("error with a key set")
			}
			if !masterKeyErrRE.MatchString(err.Error()) { // so it cannot quote the input
				t.Fatalf("unexpected error text %q", err)
			}
			return
		}
		// A parsed key round-trips through both encodings.
		for _, enc := range []string{hex.EncodeToString(mk.key[:]), base64.StdEncoding.EncodeToString(mk.key[:])} {
			again, err := ParseMasterKey(enc)
			if err != nil || again != mk {
				t.Fatalf("round trip failed: %v", err)
			}
		}
	})
}

func TestMasterKeyRedacted(t *testing.T) {
	mk := testMasterKey(t)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
		if got := fmt.Sprintf(verb, mk); got != redacted {
			t.Errorf("%s prints %q", verb, got)
		}
	}
	if got := fmt.Sprint(struct{ K MasterKey }{mk}); got != "{"+redacted+"}" {
		t.Errorf("nested: %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "mk", mk)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "mk", mk)
	if strings.Count(buf.String(), redacted) != 2 || strings.Contains(buf.String(), "0102") {
		t.Errorf("slog output: %s", buf.String())
	}
}

func TestMasterKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if _, err := LoadMasterKeyFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load missing: %v", err)
	}
	mk, err := GenerateMasterKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %04o, want 0600", perm)
	}
	loaded, err := LoadMasterKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded != mk {
		t.Error("loaded key differs from the generated one")
	}
	if _, err := GenerateMasterKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second generate: %v, want fs.ErrExist", err)
	}
	again, err := LoadMasterKeyFile(path)
	if err != nil || again != mk {
		t.Fatalf("key replaced by the failed generate (err %v)", err)
	}
}

func TestLoadMasterKeyFileRefusesOpenModes(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		path := filepath.Join(dir, fmt.Sprintf("key-%04o", mode))
		if err := os.WriteFile(path, []byte(testMasterHex+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadMasterKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), "group or others") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v", mode, err)
		}
	}
	path := filepath.Join(dir, "ok")
	if err := os.WriteFile(path, []byte("  "+testMasterHex+"\n\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if mk, err := LoadMasterKeyFile(path); err != nil || mk != testMasterKey(t) {
		t.Fatalf("0400 file: %v", err)
	}
}

func TestLoadMasterKeyFileBadContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(path, []byte("secret-ish garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadMasterKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("err = %v", err)
	}
}
