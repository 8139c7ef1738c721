package brainpool

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDomainParameters(t *testing.T) {
	if !onCurve(gx, gy) {
		t.Fatal("generator not on curve")
	}
	if R := mul(point{x: gx, y: gy}, n); !R.inf {
		t.Fatal("n·G is not the point at infinity")
	}
}

// TestRFC7027 checks the scalar multiplication against the ECDH test
// vectors of RFC 7027 Appendix A.1 (brainpoolP256r1).
func TestRFC7027(t *testing.T) {
	dA := unhex(t, "81DB1EE100150FF2EA338D708271BE38300CB54241D79950F77B063039804F1D")
	dB := unhex(t, "55E40BC41E37E3E2AD25C3C6654511FFA8474A91A0032087593852D3E7D76BD3")
	xA, yA := ScalarBaseMult(dA)
	xB, yB := ScalarBaseMult(dB)
	for _, c := range []struct {
		name string
		got  *big.Int
		want string
	}{
		{"x_qA", xA, "44106E913F92BC02A1705D9953A8414DB95E1AAA49E81D9E85F929A8E3100BE5"},
		{"y_qA", yA, "8AB4846F11CACCB73CE49CBDD120F5A900A69FD32C272223F789EF10EB089BDC"},
		{"x_qB", xB, "8D2D688C6CF93E1160AD04CC4429117DC2C41825E1E9FCA0ADDD34E6F1B39F7B"},
		{"y_qB", yB, "990C57520812BE512641E47034832106BC7D3E8DD0E4C7F1136D7006547CEC6A"},
	} {
		if got := hex.EncodeToString(c.got.FillBytes(make([]byte, 32))); got != hex.EncodeToString(unhex(t, c.want)) {
			t.Errorf("%s = %s, want %s", c.name, got, c.want)
		}
	}
	zx, zy := ScalarMult(xB, yB, dA)
	zx2, zy2 := ScalarMult(xA, yA, dB)
	if zx.Cmp(zx2) != 0 || zy.Cmp(zy2) != 0 {
		t.Fatal("shared secrets differ")
	}
	if want := hexInt("89AFC39D41D3B327814B80940B042590F96556EC91E6AE7939BCE31F3A18BF2B"); zx.Cmp(want) != 0 {
		t.Errorf("x_Z = %x", zx)
	}
	if want := hexInt("49C27868F4ECA2179BFD7D59B1E3BF34C1DBDE61AE12931648F43E59632504DE"); zy.Cmp(want) != 0 {
		t.Errorf("y_Z = %x", zy)
	}
}

// TestOpenSSLSignature verifies a signature OpenSSL 3.0 made
// (openssl ecparam -name brainpoolP256r1 -genkey; openssl dgst -sha256 -sign).
func TestOpenSSLSignature(t *testing.T) {
	spki := unhex(t, "305a301406072a8648ce3d020106092b240303020801010703420004003cdb2ec9535c36a7499474dfed26a9c4a4de096c7f9e7357ef4310039b29de6a9923cc9c80ff357582cb6a1d40bef800aab3fa046c92a29ca7b600092f4c09")
	sig := unhex(t, "30460221008a59a2a2a59c62ee4bf197924f5f46da34e02335b499531be90760a9ef98bcee022100a05f7d3b46a5f17d38966800a83af792d701282505a0d1adce5f7f97d61c5d74")
	pub, ok, err := ParsePKIX(spki)
	if err != nil || !ok {
		t.Fatalf("ParsePKIX: %v %v", ok, err)
	}
	msg := []byte("trustbroker brainpool vector")
	if !VerifyASN1(pub, Digest256(msg), sig) {
		t.Fatal("OpenSSL signature refused")
	}
	if VerifyASN1(pub, Digest256(append(msg, '!')), sig) {
		t.Fatal("signature over another message accepted")
	}
	bad := bytes.Clone(sig)
	bad[len(bad)-1] ^= 1
	if VerifyASN1(pub, Digest256(msg), bad) {
		t.Fatal("altered signature accepted")
	}
	again, err := pub.MarshalPKIX()
	if err != nil || !bytes.Equal(again, spki) {
		t.Fatalf("MarshalPKIX round trip: %x %v", again, err)
	}
}

func TestSignVerify(t *testing.T) {
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := Digest256([]byte("hello"))
	sig, err := SignASN1(rand.Reader, k, d)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyASN1(&k.PublicKey, d, sig) {
		t.Fatal("own signature refused")
	}
	other, _ := GenerateKey(rand.Reader)
	if VerifyASN1(&other.PublicKey, d, sig) {
		t.Fatal("signature accepted under another key")
	}
	// r or s out of range, and points off the curve, are refused.
	if Verify(&k.PublicKey, d, big.NewInt(0), big.NewInt(1)) || Verify(&k.PublicKey, d, n, big.NewInt(1)) {
		t.Fatal("out-of-range signature accepted")
	}
	if _, err := ParseUncompressed(append([]byte{4}, make([]byte, 64)...)); err == nil {
		t.Fatal("point (0,0) accepted")
	}
}
