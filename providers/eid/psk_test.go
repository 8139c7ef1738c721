package eid

import (
	"strings"
	"testing"
)

func TestPSKSealing(t *testing.T) {
	const secret, id, session, key = "activation-secret", "00be622f7ffc74b0", "6a77f730d193", "6b6579206f66207468652070736b"
	sealed, err := sealPSK(secret, id, session, key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, key) {
		t.Fatal("the key is readable in the sealed form")
	}
	if again, _ := sealPSK(secret, id, session, key); again == sealed {
		t.Fatal("two sealings gave the same bytes (nonce reused)")
	}
	if got, err := openPSK(secret, id, session, sealed); err != nil || got != key {
		t.Fatalf("open: %q %v", got, err)
	}
	for name, tc := range map[string][4]string{
		"other secret":   {"another-secret", id, session, sealed},
		"other PSK id":   {secret, "x" + id, session, sealed},
		"other session":  {secret, id, session + "0", sealed},
		"tampered":       {secret, id, session, sealed[:len(sealed)-2] + "AA"},
		"not base64url":  {secret, id, session, "***"},
		"too short":      {secret, id, session, "AAAA"},
		"empty":          {secret, id, session, ""},
		"empty secret":   {"", id, session, sealed},
		"swapped fields": {secret, session, id, sealed},
	} {
		if got, err := openPSK(tc[0], tc[1], tc[2], tc[3]); err == nil {
			t.Errorf("%s: opened to %q", name, got)
		}
	}
}

func FuzzOpenPSK(f *testing.F) {
	sealed, _ := sealPSK("s", "id", "sess", "key")
	f.Add("s", "id", "sess", sealed)
	f.Add("s", "id", "sess", "AAAA")
	f.Fuzz(func(t *testing.T, secret, id, session, sealed string) {
		if key, err := openPSK(secret, id, session, sealed); err == nil && key != "key" {
			t.Fatalf("opened a forged PSK: %q", key)
		}
	})
}
