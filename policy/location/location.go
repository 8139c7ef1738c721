// Package location places a client address: the named network zone it
// falls in (with the zone's trust level), the named site, and the country
// from an optional GeoIP database in the MaxMind DB format. The policy
// context is computed from it once per request.
package location

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/trustbroker/trustbroker/policy"
)

// Zone is a named set of networks with a trust level.
type Zone struct {
	Name  string
	Trust string // policy.TrustTrusted, TrustSemiTrusted or TrustUntrusted
	CIDRs []string
}

// Site is a named location: a set of networks.
type Site struct {
	Name  string
	CIDRs []string
}

// Place is where an address is.
type Place struct {
	// Zones are the names of every zone the address falls in, in
	// configuration order; Zone is the first of them, "" when none.
	Zones []string
	Zone  string
	// Trust is the trust level of Zone; policy.TrustUntrusted when the
	// address is in no zone.
	Trust   string
	Site    string
	Country string // ISO 3166-1 alpha-2, "" when unknown
}

type named struct {
	name   string
	trust  string
	prefix []netip.Prefix
}

// Locator places addresses. It is safe for concurrent use.
type Locator struct {
	zones []named
	sites []named
	geo   *maxminddb.Reader
}

// New builds a Locator; geoIPFile may be "" (country always unknown).
func New(zones []Zone, sites []Site, geoIPFile string) (*Locator, error) {
	l := &Locator{}
	for _, z := range zones {
		if !ValidTrust(z.Trust) {
			return nil, fmt.Errorf("location: zone %s: trust %q: use trusted, semi-trusted or untrusted", z.Name, z.Trust)
		}
		ps, err := prefixes(z.CIDRs)
		if err != nil {
			return nil, fmt.Errorf("location: zone %s: %w", z.Name, err)
		}
		l.zones = append(l.zones, named{name: z.Name, trust: z.Trust, prefix: ps})
	}
	for _, s := range sites {
		ps, err := prefixes(s.CIDRs)
		if err != nil {
			return nil, fmt.Errorf("location: site %s: %w", s.Name, err)
		}
		l.sites = append(l.sites, named{name: s.Name, prefix: ps})
	}
	if geoIPFile != "" {
		r, err := maxminddb.Open(geoIPFile)
		if err != nil {
			return nil, fmt.Errorf("location: GeoIP database: %w", err)
		}
		l.geo = r
	}
	return l, nil
}

// Close releases the GeoIP database.
func (l *Locator) Close() error {
	if l == nil || l.geo == nil {
		return nil
	}
	return l.geo.Close()
}

// ValidTrust reports whether t names a trust level.
func ValidTrust(t string) bool {
	return TrustRank(t) >= 0
}

// TrustRank orders trust levels: untrusted 0, semi-trusted 1, trusted 2;
// -1 for anything else.
func TrustRank(t string) int {
	switch t {
	case policy.TrustUntrusted:
		return 0
	case policy.TrustSemiTrusted:
		return 1
	case policy.TrustTrusted:
		return 2
	}
	return -1
}

// ParsePrefix accepts a CIDR or a single address (IPv4, IPv6, or
// IPv4-mapped IPv6, which is treated as the IPv4 address).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func prefixes(cidrs []string) ([]netip.Prefix, error) {
	if len(cidrs) == 0 {
		return nil, errors.New("no networks")
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := ParsePrefix(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseAddr parses a client address as it arrives (an IP, possibly
// IPv4-mapped IPv6 or with an IPv6 zone, or host:port); the zero Addr when
// malformed.
func ParseAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}

func (n *named) contains(a netip.Addr) bool {
	for _, p := range n.prefix {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Locate places ip (see ParseAddr). A malformed address is in no zone, at
// no site, in no known country.
func (l *Locator) Locate(ip string) Place {
	pl := Place{Trust: policy.TrustUntrusted}
	a := ParseAddr(ip)
	if !a.IsValid() || l == nil {
		return pl
	}
	for i := range l.zones {
		if l.zones[i].contains(a) {
			pl.Zones = append(pl.Zones, l.zones[i].name)
			if pl.Zone == "" {
				pl.Zone, pl.Trust = l.zones[i].name, l.zones[i].trust
			}
		}
	}
	for i := range l.sites {
		if l.sites[i].contains(a) {
			pl.Site = l.sites[i].name
			break
		}
	}
	if l.geo != nil {
		var rec struct {
			Country struct {
				ISOCode string `maxminddb:"iso_code"`
			} `maxminddb:"country"`
		}
		if err := l.geo.Lookup(a).Decode(&rec); err == nil {
			pl.Country = strings.ToUpper(rec.Country.ISOCode)
		}
	}
	return pl
}

// Apply fills the place of pc.ClientIP into pc.
func (l *Locator) Apply(pc *policy.Context) {
	pl := l.Locate(pc.ClientIP)
	pc.Networks, pc.Zone, pc.Trust, pc.Site, pc.Country = pl.Zones, pl.Zone, pl.Trust, pl.Site, pl.Country
}
