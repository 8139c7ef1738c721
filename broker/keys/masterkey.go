package keys

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
)

// MasterKeySize is the length of a master key in bytes (AES-256).
const MasterKeySize = 32

// maxMasterKeyFile bounds what LoadMasterKeyFile reads.
const maxMasterKeyFile = 4096

const redacted = "[redacted]"

// MasterKey is the 32-byte AES-256 key that encrypts the signing keys at
// rest. Its key material never leaves the package: every way of printing
// or logging it (fmt verbs, slog) yields "[redacted]". The zero value holds
// no key and refuses to encrypt or decrypt.
type MasterKey struct {
	key [MasterKeySize]byte
	set bool
}

// NewMasterKey reads a fresh master key from r (crypto/rand.Reader when r
// is nil).
func NewMasterKey(r io.Reader) (MasterKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var mk MasterKey
	if _, err := io.ReadFull(r, mk.key[:]); err != nil {
		return MasterKey{}, fmt.Errorf("keys: generate master key: %w", err)
	}
	mk.set = true
	return mk, nil
}

// ParseMasterKey decodes a master key given as base64 (standard or raw URL
// alphabet, RFC 4648 §4 and §5) of exactly 32 bytes, or as 64 hexadecimal
// characters. Surrounding white space is ignored. Errors never quote s.
func ParseMasterKey(s string) (MasterKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return MasterKey{}, errors.New("keys: master key is empty")
	}
	if len(s) == 2*MasterKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return masterKeyFrom(b), nil
		}
	}
	decoded := -1 // length of the first successful base64 decoding
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil && len(b) == MasterKeySize {
			return masterKeyFrom(b), nil
		}
		if err == nil && decoded < 0 {
			decoded = len(b)
		}
		clear(b)
	}
	return MasterKey{}, masterKeyError(s, decoded)
}

// masterKeyError explains why s is not a master key, without quoting it.
func masterKeyError(s string, decoded int) error {
	if strings.Trim(s, "0123456789abcdefABCDEF") == "" {
		return fmt.Errorf("keys: master key has %d hex characters, want %d", len(s), 2*MasterKeySize)
	}
	if decoded >= 0 {
		return fmt.Errorf("keys: master key decodes (base64) to %d bytes, want %d", decoded, MasterKeySize)
	}
	return fmt.Errorf("keys: master key (%d characters) is neither base64 of %d bytes nor %d hex characters",
		len(s), MasterKeySize, 2*MasterKeySize)
}

func masterKeyFrom(b []byte) MasterKey {
	mk := MasterKey{set: true}
	copy(mk.key[:], b)
	clear(b)
	return mk
}

// LoadMasterKeyFile reads a master key in a form ParseMasterKey accepts
// from the file at path. It refuses a file that group or others may access
// (mode & 0o077 != 0).
func LoadMasterKeyFile(path string) (MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return MasterKey{}, fmt.Errorf("keys: master key file: %w", err)
	}
	defer f.Close()
	if err := checkKeyFileMode(f, path); err != nil {
		return MasterKey{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMasterKeyFile))
	if err != nil {
		return MasterKey{}, fmt.Errorf("keys: read master key file %s: %w", path, err)
	}
	defer clear(b)
	mk, err := ParseMasterKey(string(b))
	if err != nil {
		return MasterKey{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return mk, nil
}

func checkKeyFileMode(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("keys: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("keys: master key file %s is not a regular file", path)
	}
	// Windows reports no meaningful permission bits.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("keys: master key file %s may be read by group or others (mode %04o); restrict it with chmod 600",
			path, perm)
	}
	return nil
}

// GenerateMasterKeyFile creates the file at path with mode 0600 and writes
// a fresh master key into it (base64, one line). It fails, with an error
// matching [fs.ErrExist], when the file exists already: callers load the
// existing file instead (LoadMasterKeyFile), so a key is never replaced.
func GenerateMasterKeyFile(path string) (MasterKey, error) {
	mk, err := NewMasterKey(nil)
	if err != nil {
		return MasterKey{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return MasterKey{}, fmt.Errorf("keys: create master key file: %w", err)
	}
	if err := writeMasterKey(f, mk); err != nil {
		_ = os.Remove(path)
		return MasterKey{}, fmt.Errorf("keys: write master key file %s: %w", path, err)
	}
	return mk, nil
}

func writeMasterKey(f *os.File, mk MasterKey) error {
	line := []byte(base64.StdEncoding.EncodeToString(mk.key[:]) + "\n")
	defer clear(line)
	_, err := f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// String returns "[redacted]".
func (MasterKey) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (MasterKey) GoString() string { return redacted }

// Format prints "[redacted]" for every fmt verb and flag.
func (MasterKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue makes slog print "[redacted]".
func (MasterKey) LogValue() slog.Value { return slog.StringValue(redacted) }
