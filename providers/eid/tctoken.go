package eid

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"

	"github.com/trustbroker/trustbroker/broker/config"
)

// TC Token values (BSI TR-03124-1 §2.4; the test bed's bsi_TCToken.xsd).
const (
	BindingPAOS      = "urn:liberty:paos:2006-08"
	PathSecurityPSK  = "urn:ietf:rfc:4279"
	maxTCTokenBytes  = 16 << 10
	tcTokenMediaType = "text/xml; charset=utf-8"
)

// TCToken is the TCTokenType the eID client fetches from the tcTokenURL.
type TCToken struct {
	XMLName                   xml.Name      `xml:"TCTokenType"`
	ServerAddress             string        `xml:"ServerAddress"`
	SessionIdentifier         string        `xml:"SessionIdentifier"`
	RefreshAddress            string        `xml:"RefreshAddress"`
	CommunicationErrorAddress string        `xml:"CommunicationErrorAddress,omitempty"`
	Binding                   string        `xml:"Binding"`
	PathSecurityProtocol      string        `xml:"PathSecurity-Protocol,omitempty"`
	PathSecurityParameters    *PathSecurity `xml:"PathSecurity-Parameters,omitempty"`
}

// PathSecurity holds the TLS-2 pre-shared key (hexBinary).
type PathSecurity struct {
	PSK string `xml:"PSK"`
}

// NewTCToken builds the token of a useID answer: ServerAddress is the
// eCardServerAddress verbatim, SessionIdentifier the PSK ID (the TLS
// psk_identity), the PSK the TLS-2 key.
func NewTCToken(serverAddress string, psk PSK, refresh, commError string) *TCToken {
	return &TCToken{
		ServerAddress: serverAddress, SessionIdentifier: psk.ID, RefreshAddress: refresh,
		CommunicationErrorAddress: commError, Binding: BindingPAOS,
		PathSecurityProtocol: PathSecurityPSK, PathSecurityParameters: &PathSecurity{PSK: psk.Key},
	}
}

// Marshal serialises the token with an XML declaration.
func (t *TCToken) Marshal() ([]byte, error) {
	b, err := xml.Marshal(t)
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), b...), nil
}

// ParseTCToken reads and checks a TC token as an eID client does: the
// addresses are absolute https URLs (http only on a loopback host, for the
// simulator), the binding is PAOS, the PSK is hex.
func ParseTCToken(b []byte) (*TCToken, error) {
	if len(b) > maxTCTokenBytes {
		return nil, errors.New("tc token: too large")
	}
	if bytes.Contains(bytes.ToUpper(b), []byte("<!DOCTYPE")) {
		return nil, errors.New("tc token: document type declarations are not allowed")
	}
	var t TCToken
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("tc token: %w", err)
	}
	if t.XMLName.Space != "" {
		return nil, errors.New("tc token: TCTokenType has no namespace")
	}
	for name, v := range map[string]string{"ServerAddress": t.ServerAddress, "RefreshAddress": t.RefreshAddress} {
		if err := checkTokenURL(v); err != nil {
			return nil, fmt.Errorf("tc token: %s: %w", name, err)
		}
	}
	if t.CommunicationErrorAddress != "" {
		if err := checkTokenURL(t.CommunicationErrorAddress); err != nil {
			return nil, fmt.Errorf("tc token: CommunicationErrorAddress: %w", err)
		}
	}
	if t.SessionIdentifier == "" || len(t.SessionIdentifier) > 256 || !printable.MatchString(t.SessionIdentifier) {
		return nil, errors.New("tc token: bad SessionIdentifier")
	}
	if t.Binding != BindingPAOS {
		return nil, fmt.Errorf("tc token: unsupported binding %q", t.Binding)
	}
	if t.PathSecurityProtocol != "" && t.PathSecurityProtocol != PathSecurityPSK {
		return nil, fmt.Errorf("tc token: unsupported path security %q", t.PathSecurityProtocol)
	}
	if t.PathSecurityProtocol == PathSecurityPSK {
		if t.PathSecurityParameters == nil || ValidPSK(&PSK{ID: t.SessionIdentifier, Key: t.PathSecurityParameters.PSK}) != nil {
			return nil, errors.New("tc token: TLS-PSK without a valid PSK")
		}
	}
	return &t, nil
}

func checkTokenURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil {
		return errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if config.IsLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return errors.New("not https")
}
