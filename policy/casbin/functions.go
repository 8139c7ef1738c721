package casbin

import (
	"fmt"
	"slices"
	"time"

	"github.com/casbin/govaluate"

	"github.com/trustbroker/trustbroker/broker/loa"
)

// The custom functions of the matcher. Each takes a request value (r.sub,
// r.obj, r.act or r.ctx) and one policy column, whose compiled form the
// snapshot holds; a column it has not compiled (a custom matcher, an
// operator's experiment) is compiled on the spot.
//
//	subjectIn(r.sub, p.sub)     the subject holds one of the roles / is the account
//	objectMatch(r.obj, p.obj)   the object id (glob) and path pattern match
//	actionIn(r.act, p.act)      the action is listed, or "*"
//	zoneIn(r.ctx, p.zone)       the client is in a listed zone or meets a trust condition
//	siteIn(r.ctx, p.site)       the client is at a listed site
//	countryIn(r.ctx, p.country) the client's country is listed (unknown never is)
//	within(r.ctx, p.hours)      the time lies in one of the windows
//	loaAtLeast(r.ctx, p.loa)    the level of assurance reaches the minimum
//	credentialIn(r.ctx, p.cred) the credential kind is listed; "hardware" needs a hardware token
//
// An empty column places no condition: the function returns true.
func (s *snapshot) functions() map[string]govaluate.ExpressionFunction {
	return map[string]govaluate.ExpressionFunction{
		"subjectIn": fn2(func(subs subjectSet, col string) bool { return s.subjectIn(subs, col) }),
		"objectMatch": fn2(func(o objectRef, col string) bool {
			obs, ok := s.objCol[col]
			if !ok {
				obs = compileObjects(col)
			}
			return matchObjects(obs, o)
		}),
		"actionIn": fn2(func(act string, col string) bool { return listIn(s.list(col), act) }),
		"zoneIn": fn2(func(ec *evalCtx, col string) bool {
			zs, ok := s.zoneCol[col]
			if !ok {
				zs = compileZones(col)
			}
			return zoneMatch(zs, ec)
		}),
		"siteIn": fn2(func(ec *evalCtx, col string) bool {
			l := s.list(col)
			return len(l) == 0 || slices.Contains(l, ec.Site)
		}),
		"countryIn": fn2(func(ec *evalCtx, col string) bool {
			l := s.list(col)
			return len(l) == 0 || (ec.Country != "" && slices.Contains(l, ec.Country))
		}),
		"within": fn2(func(ec *evalCtx, col string) bool {
			ws, ok := s.winCol[col]
			if !ok {
				var err error
				if ws, err = parseWindows(col, time.UTC); err != nil {
					return false
				}
			}
			return windowsMatch(ws, ec.Time)
		}),
		"loaAtLeast": fn2(func(ec *evalCtx, col string) bool {
			min, ok := s.loaCol[col]
			if !ok {
				var err error
				if min, err = loa.Parse(col); err != nil && col != "" {
					return false
				}
			}
			return ec.LoA.Satisfies(min)
		}),
		"credentialIn": fn2(func(ec *evalCtx, col string) bool {
			cr, ok := s.credCol[col]
			if !ok {
				cr = compileCred(col)
			}
			return credMatch(cr, ec)
		}),
	}
}

// fn2 adapts a typed two-argument predicate to govaluate; arguments of the
// wrong type are an error (a model that passes the wrong request value).
func fn2[A any](f func(A, string) bool) govaluate.ExpressionFunction {
	return func(args ...any) (any, error) {
		if len(args) != 2 {
			return false, fmt.Errorf("want 2 arguments, got %d", len(args))
		}
		a, ok := args[0].(A)
		if !ok {
			return false, fmt.Errorf("first argument is %T", args[0])
		}
		col, ok := args[1].(string)
		if !ok {
			return false, fmt.Errorf("second argument is %T", args[1])
		}
		return f(a, col), nil
	}
}

func (s *snapshot) list(col string) []string {
	if l, ok := s.lists[col]; ok {
		return l
	}
	return fieldsOf(col)
}

func (s *snapshot) subjectIn(subs subjectSet, col string) bool {
	for _, n := range s.list(col) {
		if n == "*" || subs[normalizeSubject(n)] {
			return true
		}
	}
	return false
}

func listIn(l []string, v string) bool {
	return slices.Contains(l, "*") || slices.Contains(l, v)
}

func matchObjects(obs []object, o objectRef) bool {
	for _, ob := range obs {
		if ob.match(o.id, o.path) {
			return true
		}
	}
	return false
}

func zoneMatch(zs []zoneItem, ec *evalCtx) bool {
	if len(zs) == 0 {
		return true
	}
	for _, z := range zs {
		switch {
		case !z.trustSet:
			if slices.Contains(ec.Networks, z.name) || ec.Zone == z.name {
				return true
			}
		case z.atLeast:
			if ec.trustRank >= z.trust {
				return true
			}
		default:
			if ec.trustRank == z.trust {
				return true
			}
		}
	}
	return false
}

func windowsMatch(ws []window, t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for i := range ws {
		if ws[i].contains(t) {
			return true
		}
	}
	return false
}

func credMatch(cr credReq, ec *evalCtx) bool {
	if cr.hwk && !ec.HardwareToken {
		return false
	}
	return len(cr.kinds) == 0 || slices.Contains(cr.kinds, ec.CredentialKind)
}

func compileObjects(col string) []object {
	var out []object
	for _, f := range fieldsOf(col) {
		if o, err := compileObject(f); err == nil {
			out = append(out, o)
		}
	}
	return out
}

func compileZones(col string) []zoneItem {
	var out []zoneItem
	for _, f := range fieldsOf(col) {
		if z, err := compileZoneItem(f, nil); err == nil {
			out = append(out, z)
		}
	}
	return out
}

func compileCred(col string) credReq {
	var cr credReq
	for _, f := range fieldsOf(col) {
		if f == CredentialHardware {
			cr.hwk = true
		} else {
			cr.kinds = append(cr.kinds, f)
		}
	}
	return cr
}
