package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestSealRoundTrip(t *testing.T) {
	mk := testMasterKey(t)
	plain := []byte("pkcs8 bytes")
	sealed, err := mk.seal(rand.Reader, "kid-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0] != sealV1 || len(sealed) != 1+12+len(plain)+16 {
		t.Fatalf("layout: version %d, %d bytes", sealed[0], len(sealed))
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("plaintext visible")
	}
	got, err := mk.open("kid-1", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := mk.open("kid-2", sealed); !errors.Is(err, ErrMasterKeyMismatch) {
		t.Errorf("other kid: %v", err)
	}
	if _, err := otherMasterKey(t).open("kid-1", sealed); !errors.Is(err, ErrMasterKeyMismatch) {
		t.Errorf("other master key: %v", err)
	}
	again, _ := mk.seal(rand.Reader, "kid-1", plain)
	if bytes.Equal(again, sealed) {
		t.Error("nonce reused")
	}
}

func TestSealNeedsMasterKey(t *testing.T) {
	var zero MasterKey
	if _, err := zero.seal(rand.Reader, "k", []byte("x")); !errors.Is(err, errNoMasterKey) {
		t.Errorf("seal: %v", err)
	}
	if _, err := zero.open("k", []byte{1}); !errors.Is(err, errNoMasterKey) {
		t.Errorf("open: %v", err)
	}
}

func TestNewMasterKey(t *testing.T) {
	a, err := NewMasterKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewMasterKey(nil)
	if a == b || !a.set {
		t.Error("two fresh master keys are equal or unset")
	}
	if _, err := NewMasterKey(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Error("short random source accepted")
	}
}
