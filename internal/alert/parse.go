package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/playbookstudio/gateway/internal/fault"
)

// Incoming is one posted alert, checked: the fields the gateway reads, and
// the object itself (normalised JSON).
type Incoming struct {
	ID, Title, Severity, Status, IncidentID string
	CreatedAt                               time.Time
	LastUpdate                              time.Time // zero when absent
	JSON                                    json.RawMessage
}

const maxIDLen = 256

// maxClockSkew is how far past the gateway's clock a posted
// createdDateTime or lastUpdateDateTime may be. Senders' clocks drift a
// little, so some slack is fair; but lastUpdateDateTime decides whether a
// re-post is newer, and one far in the future would make every genuine
// later update look older and freeze the alert for good.
const maxClockSkew = time.Hour

// minAlertTime is the earliest time an alert may carry. Nothing the
// gateway takes predates it; earlier dates are a sender's zero value
// (.NET's 0001-01-01, which Go reads as its zero time, i.e. "absent").
var minAlertTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

func invalid(index int, field, msg string) *fault.Error {
	return fault.New(fault.Invalid, "invalid_alert", fmt.Sprintf("Alert %d: %s", index, msg)).
		With("index", index).With("field", field)
}

// Parse reads the body of POST /api/alerts: one alert object, or
// {"value":[alert…]}. Every alert is checked before any is stored, so a
// batch is taken whole or refused whole; refusals name the alert's index
// (0-based) and the field. now is the gateway's clock: a createdDateTime
// or lastUpdateDateTime more than maxClockSkew after it, or before 1970,
// is refused.
func Parse(body []byte, now time.Time) ([]Incoming, error) {
	if len(body) > MaxBodyBytes {
		return nil, fault.New(fault.TooLarge, "too_large", fmt.Sprintf("The request body is over %d bytes (1 MiB), the limit of one post; send fewer alerts at a time.", MaxBodyBytes))
	}
	if !utf8.Valid(body) {
		return nil, fault.New(fault.Invalid, "bad_request", "The request body is not UTF-8 text.")
	}
	var top map[string]json.RawMessage
	if err := strictUnmarshal(body, &top); err != nil || top == nil {
		return nil, fault.Wrap(fault.Invalid, "bad_request", "The request body must be one alert (a JSON object) or {\"value\":[alert…]}.", err)
	}
	raws := []json.RawMessage{body}
	if v, ok := top["value"]; ok {
		if _, hasID := top["id"]; !hasID {
			if err := json.Unmarshal(v, &raws); err != nil {
				return nil, fault.Wrap(fault.Invalid, "bad_request", "\"value\" must be a list of alerts.", err)
			}
		}
	}
	if len(raws) == 0 {
		return nil, fault.New(fault.Invalid, "invalid_alert", "\"value\" holds no alert.")
	}
	if len(raws) > MaxBatch {
		return nil, fault.New(fault.TooLarge, "too_large", fmt.Sprintf("The post holds %d alerts; at most %d are taken at a time.", len(raws), MaxBatch))
	}
	out := make([]Incoming, 0, len(raws))
	for i, raw := range raws {
		in, err := parseOne(i, raw, now)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

func parseOne(i int, raw json.RawMessage, now time.Time) (Incoming, error) {
	var m map[string]any
	// Numbers stay as written (json.Number): an alert's large ids must not
	// lose digits through float64.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return Incoming{}, invalid(i, "", "is not a JSON object.")
	}
	var in Incoming
	var err error
	if in.ID, err = requiredString(i, m, "id"); err != nil {
		return Incoming{}, err
	}
	if len(in.ID) > maxIDLen {
		return Incoming{}, invalid(i, "id", fmt.Sprintf("the field \"id\" is longer than %d characters.", maxIDLen))
	}
	for _, r := range in.ID {
		if r < 0x20 || r == 0x7f {
			return Incoming{}, invalid(i, "id", "the field \"id\" holds a control character.")
		}
	}
	if in.Title, err = requiredString(i, m, "title"); err != nil {
		return Incoming{}, err
	}
	// Any severity the sender uses is kept (unknown enum values too).
	if in.Severity, err = requiredString(i, m, "severity"); err != nil {
		return Incoming{}, err
	}
	created, err := requiredString(i, m, "createdDateTime")
	if err != nil {
		return Incoming{}, err
	}
	if in.CreatedAt, err = parseTime(i, in.ID, "createdDateTime", created, now); err != nil {
		return Incoming{}, err
	}
	if s, ok, err := optionalString(i, m, "lastUpdateDateTime"); err != nil {
		return Incoming{}, err
	} else if ok {
		if in.LastUpdate, err = parseTime(i, in.ID, "lastUpdateDateTime", s, now); err != nil {
			return Incoming{}, err
		}
	}
	switch v := m["incidentId"].(type) {
	case nil:
	case string:
		in.IncidentID = v
	case json.Number:
		// Some senders number incidents; they group the same either way.
		in.IncidentID = v.String()
		m["incidentId"] = in.IncidentID
	default:
		return Incoming{}, invalid(i, "incidentId", "the field \"incidentId\" must be a string.")
	}
	if len(in.IncidentID) > maxIDLen {
		return Incoming{}, invalid(i, "incidentId", fmt.Sprintf("the field \"incidentId\" is longer than %d characters.", maxIDLen))
	}
	if s, ok, err := optionalString(i, m, "status"); err != nil {
		return Incoming{}, err
	} else if ok {
		in.Status = s
	} else {
		// Graph's alerts start new; one posted without a status is too.
		in.Status = "new"
		m["status"] = "new"
	}
	for _, f := range []string{"assignedTo", "classification", "determination"} {
		if _, _, err := optionalString(i, m, f); err != nil {
			return Incoming{}, err
		}
	}
	if c, ok := m["comments"]; ok && c != nil {
		if _, isList := c.([]any); !isList {
			return Incoming{}, invalid(i, "comments", "the field \"comments\" must be a list.")
		}
	}
	if in.JSON, err = json.Marshal(m); err != nil {
		return Incoming{}, invalid(i, "", "cannot be re-encoded as JSON.")
	}
	return in, nil
}

// parseTime reads an RFC 3339 time the gateway orders alerts by, in UTC,
// refusing one outside [minAlertTime, now+maxClockSkew]. Its refusals
// name the alert's id too: the sender has to find the alert to fix it.
func parseTime(i int, id, field, s string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid(i, field, fmt.Sprintf("the field %q is not an RFC 3339 time.", field))
	}
	t = t.UTC()
	switch {
	case t.After(now.Add(maxClockSkew)):
		return time.Time{}, invalid(i, field, fmt.Sprintf("the field %q of alert %q is %s, more than %d minutes after the gateway's clock (%s); "+
			"a time in the future would make the sender's later updates look older. Check the sender's clock.",
			field, id, t.Format(time.RFC3339Nano), int(maxClockSkew.Minutes()), now.UTC().Format(time.RFC3339))).With("id", id)
	case t.Before(minAlertTime):
		return time.Time{}, invalid(i, field, fmt.Sprintf("the field %q of alert %q is %s, before 1970; send the alert's real time.",
			field, id, t.Format(time.RFC3339Nano))).With("id", id)
	}
	return t, nil
}

func requiredString(i int, m map[string]any, field string) (string, error) {
	v, present := m[field]
	if !present || v == nil {
		return "", invalid(i, field, fmt.Sprintf("the field %q is required.", field))
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid(i, field, fmt.Sprintf("the field %q must be a string.", field))
	}
	if s == "" {
		return "", invalid(i, field, fmt.Sprintf("the field %q is required and empty.", field))
	}
	return s, nil
}

// optionalString reads a field that may be absent or null.
func optionalString(i int, m map[string]any, field string) (string, bool, error) {
	v, present := m[field]
	if !present || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, invalid(i, field, fmt.Sprintf("the field %q must be a string or null.", field))
	}
	return s, true, nil
}
