package xmlsig

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"testing"
)

// RFC 3394 §4.6: wrap 256 bits of key data with a 256-bit KEK.
func TestAESKeyWrapRFC3394(t *testing.T) {
	kek, _ := hex.DecodeString("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want, _ := hex.DecodeString("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := aesKeyWrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wrap: %x, %v", got, err)
	}
	back, err := aesKeyUnwrap(kek, got)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("unwrap: %x, %v", back, err)
	}
	got[5] ^= 1
	if _, err := aesKeyUnwrap(kek, got); err == nil {
		t.Fatal("tampered wrapped key accepted")
	}
	if _, err := aesKeyUnwrap(kek, got[:16]); err == nil {
		t.Fatal("short wrapped key accepted")
	}
}

// NIST SP 800-56A single-step KDF: one hash block is
// SHA-256(00000001 || Z || OtherInfo); two blocks continue with counter 2.
func TestConcatKDF(t *testing.T) {
	z := []byte{1, 2, 3}
	oi := []byte("info")
	h := crypto.SHA256.New()
	h.Write([]byte{0, 0, 0, 1})
	h.Write(z)
	h.Write(oi)
	b1 := h.Sum(nil)
	h.Reset()
	h.Write([]byte{0, 0, 0, 2})
	h.Write(z)
	h.Write(oi)
	b2 := h.Sum(nil)
	if got := concatKDF(crypto.SHA256, z, oi, 32); !bytes.Equal(got, b1) {
		t.Fatalf("one block: %x", got)
	}
	if got := concatKDF(crypto.SHA256, z, oi, 40); !bytes.Equal(got, append(b1, b2[:8]...)) {
		t.Fatalf("two blocks: %x", got)
	}
	if b, err := bitString("0041"); err != nil || !bytes.Equal(b, []byte{0x41}) {
		t.Fatalf("bit string: %x %v", b, err)
	}
	if _, err := bitString("0341"); err == nil {
		t.Fatal("padded bit string accepted")
	}
}
