package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// Column conversions shared by every repository.
//
// Times are stored as BIGINT microseconds since the Unix epoch, UTC. The
// same integer works in both dialects, compares and indexes cheaply, and
// leaves no room for time-zone or driver-format surprises (SQLite has no
// time type; PostgreSQL's timestamptz would come back in the session time
// zone). 0 stands for the zero time.time.Time ("not set").

// micros is the stored form of t.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros, in UTC.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// roundTime returns t as it will come back from the database.
func roundTime(t time.Time) time.Time { return fromMicros(micros(t)) }

// timeCol scans a microsecond column into a time.Time.
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = time.Time{}
	case int64:
		*c.dst = fromMicros(v)
	default:
		return fmt.Errorf("time column: unexpected %T", src)
	}
	return nil
}

// jsonCol scans a TEXT JSON column (NULL → nil) into a json.RawMessage.
type jsonCol struct{ dst *json.RawMessage }

func (c jsonCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = nil
	case string:
		*c.dst = json.RawMessage(v)
	case []byte:
		*c.dst = append(json.RawMessage(nil), v...)
	default:
		return fmt.Errorf("json column: unexpected %T", src)
	}
	return nil
}

// stringsCol scans a TEXT JSON array into a []string; an empty array
// comes back as nil.
type stringsCol struct{ dst *[]string }

func (c stringsCol) Scan(src any) error {
	var raw json.RawMessage
	if err := (jsonCol{&raw}).Scan(src); err != nil {
		return err
	}
	*c.dst = nil
	if len(raw) == 0 {
		return nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return fmt.Errorf("string list column: %w", err)
	}
	if len(ss) > 0 {
		*c.dst = ss
	}
	return nil
}

// jsonArg is the argument for a TEXT JSON column: NULL for an empty value.
// It fails on malformed JSON so that readers never meet it.
func jsonArg(field string, raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s: invalid JSON", field)
	}
	return string(raw), nil
}

// jsonArgs applies jsonArg to each field, in order; names and raws pair up.
func jsonArgs(names []string, raws ...json.RawMessage) ([]any, error) {
	out := make([]any, len(raws))
	for i, raw := range raws {
		v, err := jsonArg(names[i], raw)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// stringsArg is the argument for a TEXT JSON string-list column.
func stringsArg(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, err := json.Marshal(ss)
	if err != nil { // cannot happen for []string
		panic(err)
	}
	return string(b)
}
