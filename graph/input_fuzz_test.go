package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/crmsync/crmsync/graph/model"
	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/record"
)

// FuzzRecordChangesInput feeds recordChanges' input, as a client sends it in
// variables, through gqlgen's coercion (enums checked against the schema,
// the other types' UnmarshalGQL),
// changesOf and outbound.Validate. Whatever the input, nothing panics, and
// the input is either refused with an *outbound.InputError or turned into
// one change per input entry that Validate accepts or refuses with an
// *outbound.InputError: never another error, never a silent drop.
func FuzzRecordChangesInput(f *testing.F) {
	for _, seed := range []string{
		`[]`,
		`[{"recordType":"CONTACT","recordId":"c1","source":"UI","fields":[{"name":"title","value":"CEO"}]}]`,
		`[{"recordType":"COMPANY","recordId":"co1","source":"API","fields":[{"name":"name","value":null,"changedAt":"2026-01-01T00:00:00Z"}]}]`,
		`[{"recordType":"CONTACT","recordId":"c1","source":"UI","fields":[{"name":"title","value":1},{"name":"title","value":2}]}]`,
		`[{"recordType":"CONTACT","recordId":"","source":"FORM","fields":[{"name":"bad name","value":{"a":[1]}}]}]`,
		`[{"recordType":"CAMPAIGN_MEMBER","source":"WORKFLOW","membership":{"campaignId":"k1","contactId":"c1","action":"ADD","status":"Sent"}}]`,
		`[{"recordType":"CAMPAIGN_MEMBER","source":"UI","membership":{"campaignId":"","contactId":"c1","action":"REMOVE"}}]`,
		`[{"recordType":"CAMPAIGN_MEMBER","source":"UI"}]`,
		`[{"recordType":"TASK","recordId":"t1","source":"UI","fields":[{"name":"subject","value":"x"}]}]`,
		`[{"recordType":"CONTACT","recordId":"c1","source":"UI","fields":[{"name":"title","value":"x","changedAt":"2999-01-01T00:00:00Z"}]}]`,
		`[{"recordType":"CONTACT","recordId":"c1","source":"UI","fields":[]}]`,
		`[{"recordType":"CONTACT","recordId":"' OR 1=1 --","source":"IMPORT","fields":[{"name":"email","value":"\u0000\\'"}]}]`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, variables []byte) {
		input, ok := coerceRecordChanges(variables)
		if !ok {
			return // gqlgen refuses it before the resolver runs
		}
		changes, err := changesOf(input, now)
		if err != nil {
			requireInputError(t, "changesOf", err)
			return
		}
		if len(changes) != len(input) {
			t.Fatalf("%d changes from %d inputs", len(changes), len(input))
		}
		if err := outbound.Validate(changes, now); err != nil {
			requireInputError(t, "Validate", err)
		}
	})
}

func requireInputError(t *testing.T, op string, err error) {
	t.Helper()
	var ie *outbound.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: want an *outbound.InputError, got %T: %v", op, err, err)
	}
	if len(ie.Problems) == 0 || ie.Error() == "" {
		t.Fatalf("%s: an InputError names its problems: %#v", op, ie)
	}
}

// fuzzSchema is the schema gqlgen checks variables against.
var fuzzSchema = NewExecutableSchema(&Resolver{}).Schema()

// coerceEnum decodes an enum bound to a domain type the way gqlgen does:
// the validator accepts only a string naming a value of the schema's enum,
// and the generated unmarshaler maps it to the constant of the same
// spelling. It reports false where gqlgen would refuse the value.
func coerceEnum[T ~string](enum string, v any) (T, bool) {
	s, ok := v.(string)
	if !ok || fuzzSchema.Types[enum].EnumValues.ForName(s) == nil {
		return "", false
	}
	return T(s), true
}

// coerceRecordChanges decodes variables the way gqlgen does (JSON with
// numbers kept, then each input field through its type's UnmarshalGQL),
// reporting false where gqlgen would refuse the variables.
func coerceRecordChanges(variables []byte) ([]*model.RecordChangeInput, bool) {
	dec := json.NewDecoder(bytes.NewReader(variables))
	dec.UseNumber()
	var raw []map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, false
	}
	out := make([]*model.RecordChangeInput, 0, len(raw))
	for _, obj := range raw {
		if obj == nil {
			return nil, false
		}
		in := &model.RecordChangeInput{}
		var ok bool
		if in.RecordType, ok = coerceEnum[record.Type]("RecordType", obj["recordType"]); !ok || in.Source.UnmarshalGQL(obj["source"]) != nil {
			return nil, false
		}
		if v, ok := obj["recordId"]; ok && v != nil {
			s, ok := v.(string)
			if !ok {
				return nil, false
			}
			in.RecordID = &s
		}
		if v, ok := obj["fields"]; ok && v != nil {
			list, ok := v.([]any)
			if !ok {
				return nil, false
			}
			for _, item := range list {
				fc, ok := coerceField(item)
				if !ok {
					return nil, false
				}
				in.Fields = append(in.Fields, fc)
			}
		}
		if v, ok := obj["membership"]; ok && v != nil {
			m, ok := coerceMembership(v)
			if !ok {
				return nil, false
			}
			in.Membership = m
		}
		out = append(out, in)
	}
	return out, true
}

func coerceField(v any) (*model.FieldChangeInput, bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	name, ok := obj["name"].(string)
	if !ok {
		return nil, false
	}
	fc := &model.FieldChangeInput{Name: name}
	if val, ok := obj["value"]; ok && val != nil {
		if fc.Value.UnmarshalGQL(val) != nil {
			return nil, false
		}
	}
	if at, ok := obj["changedAt"]; ok && at != nil {
		ts, err := model.UnmarshalTime(at)
		if err != nil {
			return nil, false
		}
		fc.ChangedAt = &ts
	}
	return fc, true
}

func coerceMembership(v any) (*model.MembershipInput, bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	m := &model.MembershipInput{}
	var okC, okK, okA bool
	m.CampaignID, okC = obj["campaignId"].(string)
	m.ContactID, okK = obj["contactId"].(string)
	m.Action, okA = coerceEnum[outbound.MembershipAction]("MembershipAction", obj["action"])
	if !okC || !okK || !okA {
		return nil, false
	}
	if s, ok := obj["status"]; ok && s != nil {
		str, ok := s.(string)
		if !ok {
			return nil, false
		}
		m.Status = &str
	}
	return m, true
}
