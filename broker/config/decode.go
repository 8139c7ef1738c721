package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in the configuration: the key path (for
// example "relying_parties[0].oidc.redirect_uris[1]"), the YAML line when
// known, and what is wrong.
type Error struct {
	Path string
	Line int
	Msg  string
}

func (e Error) Error() string {
	p := e.Path
	if p == "" {
		p = "(top level)"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", p, e.Msg, e.Line)
	}
	return fmt.Sprintf("%s: %s", p, e.Msg)
}

// Errors collects every problem found; it is returned as one error so that
// an operator sees all of them at once.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// add records a problem.
func (es *Errors) add(path string, line int, format string, args ...any) {
	*es = append(*es, Error{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil when nothing was recorded.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Block is a polymorphic `{type, config}` section: Type names the
// implementation, Config stays raw until the implementation's factory
// decodes it with DecodeStrict into its own typed struct.
type Block struct {
	Type   string    `yaml:"type"`
	Config yaml.Node `yaml:"config"`
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	nodeType     = reflect.TypeOf(yaml.Node{})
)

// DecodeStrict decodes node into out (a pointer) and reports every unknown
// key, wrong type and malformed value with its key path, prefixed by path.
// Nothing is written to out unless the whole node is valid.
func DecodeStrict(node *yaml.Node, out any, path string) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("config: DecodeStrict needs a non-nil pointer")
	}
	if node == nil || node.Kind == 0 {
		return nil
	}
	var errs Errors
	tmp := reflect.New(rv.Elem().Type())
	tmp.Elem().Set(rv.Elem())
	decodeInto(node, tmp.Elem(), path, &errs)
	if err := errs.err(); err != nil {
		return err
	}
	rv.Elem().Set(tmp.Elem())
	return nil
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func decodeInto(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if n.Tag == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	switch {
	case v.Type() == durationType:
		decodeDuration(n, v, path, errs)
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		decodeInto(n, p.Elem(), path, errs)
		v.Set(p)
	case v.Kind() == reflect.Struct:
		decodeStruct(n, v, path, errs)
	case v.Kind() == reflect.Slice:
		decodeSlice(n, v, path, errs)
	case v.Kind() == reflect.Map:
		decodeMap(n, v, path, errs)
	default:
		decodeScalar(n, v, path, errs)
	}
}

func decodeDuration(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind != yaml.ScalarNode {
		errs.add(path, n.Line, "expected a duration such as \"30s\" or \"8h\"")
		return
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		errs.add(path, n.Line, "%q is not a duration (use a unit, e.g. \"30s\", \"10m\", \"8h\")", n.Value)
		return
	}
	v.SetInt(int64(d))
}

// fieldsOf maps YAML keys to struct field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind != yaml.MappingNode {
		errs.add(path, n.Line, "expected a mapping of keys, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := joinKey(path, k.Value)
		if seen[k.Value] {
			errs.add(kp, k.Line, "key given twice")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			errs.add(kp, k.Line, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		decodeInto(val, v.Field(idx), kp, errs)
	}
}

func decodeSlice(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind != yaml.SequenceNode {
		errs.add(path, n.Line, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		decodeInto(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
	}
	v.Set(s)
}

func decodeMap(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind != yaml.MappingNode {
		errs.add(path, n.Line, "expected a mapping, got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		errs.add(path, n.Line, "internal: map keys must be strings")
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := joinKey(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())).IsValid() {
			errs.add(kp, k.Line, "key given twice")
			continue
		}
		ev := reflect.New(v.Type().Elem()).Elem()
		decodeInto(val, ev, kp, errs)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

func decodeScalar(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind != yaml.ScalarNode {
		errs.add(path, n.Line, "expected a %s, got %s", kindName(v.Kind()), describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!timestamp" && n.Tag != "!!binary" && n.Tag != "!!bool" {
			errs.add(path, n.Line, "expected a string, got %s", describe(n))
			return
		}
		if n.Tag == "!!bool" {
			// yes/no/on/off are strings in YAML 1.2, true/false are not:
			// refuse the ambiguous case instead of guessing.
			errs.add(path, n.Line, "expected a string, got the boolean %s (quote it)", n.Value)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if err != nil || n.Tag != "!!bool" {
			errs.add(path, n.Line, "expected true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, v.Type().Bits())
		if err != nil || n.Tag != "!!int" {
			errs.add(path, n.Line, "expected a whole number, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(n.Value, 0, v.Type().Bits())
		if err != nil || n.Tag != "!!int" {
			errs.add(path, n.Line, "expected a non-negative whole number, got %q", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, v.Type().Bits())
		if err != nil || (n.Tag != "!!float" && n.Tag != "!!int") {
			errs.add(path, n.Line, "expected a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		errs.add(path, n.Line, "internal: unsupported field type %s", v.Type())
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Float32, reflect.Float64:
		return "number"
	default:
		return "whole number"
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "something else"
	}
}

// suggest names the closest known key for a misspelt one.
func suggest(key string, fields map[string]int) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(key, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
