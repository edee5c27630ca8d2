package crmplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// This file is the one place where connector types meet their wire form:
// Go values to proto messages and back, and connector errors to gRPC
// statuses and back.

// kindCodes is the gRPC code of each connector.Kind's status. A status
// carries the connector.Error in its details too; the code alone decodes a
// status without them (a plugin built against another protocol revision, a
// method the plugin's binary does not have). A new Kind gets one line here.
var kindCodes = map[connector.Kind]codes.Code{
	connector.KindUnknown:     codes.Unknown,
	connector.KindCredentials: codes.Unauthenticated,
	connector.KindRateLimited: codes.ResourceExhausted,
	connector.KindUnavailable: codes.Unavailable,
	connector.KindUnsupported: codes.Unimplemented,
	connector.KindInvalid:     codes.InvalidArgument,
}

// codeKinds is kindCodes read backwards.
var codeKinds = func() map[codes.Code]connector.Kind {
	out := make(map[codes.Code]connector.Kind, len(kindCodes))
	for k, c := range kindCodes {
		out[c] = k
	}
	return out
}()

// maxMessageRunes bounds an error message on the wire: it travels in the
// status's trailer twice (message and details), which HTTP/2 limits.
const maxMessageRunes = 2000

// wireString is s as a proto3 string can carry it: valid UTF-8 (a message
// with invalid bytes would fail to encode and take the status's details,
// so its kind, with it) and at most max characters, cut between characters.
func wireString(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max { // fewer bytes than max: fewer characters too
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// errorToStatus encodes a connector method's error as a gRPC status whose
// code is the error's kind and whose details carry the connector.Error
// (kind, message, retry-after), whatever bytes its message holds.
func errorToStatus(err error) error {
	if err == nil {
		return nil
	}
	// Context errors first, even wrapped in a connector.Error: a deadline
	// must stay a deadline on the host.
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, wireString(err.Error(), maxMessageRunes))
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, wireString(err.Error(), maxMessageRunes))
	}
	var ce *connector.Error
	if !errors.As(err, &ce) {
		ce = &connector.Error{Kind: connector.KindUnknown}
	}
	msg := ce.Message
	if error(ce) != err || msg == "" {
		msg = err.Error()
	}
	msg = wireString(msg, maxMessageRunes)
	code, ok := kindCodes[ce.Kind]
	if !ok {
		code = codes.Unknown // a kind this side does not know: never codes.OK
	}
	st := status.New(code, msg)
	detail := &connectorv1.Error{Kind: int32(ce.Kind), Message: msg}
	if ce.RetryAfter > 0 {
		detail.RetryAfter = durationpb.New(ce.RetryAfter)
	}
	if withDetail, derr := st.WithDetails(detail); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// statusToError decodes an error returned by a plugin call. It returns ctx's
// error when the caller gave up, the connector.Error the plugin sent, and
// otherwise the kind the status code stands for (KindUnknown for codes that
// stand for none). transport reports an Unavailable status without details:
// a transport failure, the plugin may have died.
func statusToError(ctx context.Context, err error) (_ error, transport bool) {
	if cerr := ctx.Err(); cerr != nil {
		return cerr, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return &connector.Error{Kind: connector.KindUnknown, Message: err.Error(), Err: err}, false
	}
	for _, d := range st.Details() {
		if e, ok := d.(*connectorv1.Error); ok {
			kind := connector.Kind(e.GetKind())
			if _, known := kindCodes[kind]; !known {
				kind = codeKinds[st.Code()] // a newer plugin's kind: its code says what it is
			}
			return &connector.Error{Kind: kind, Message: e.GetMessage(), RetryAfter: e.GetRetryAfter().AsDuration()}, false
		}
	}
	switch st.Code() {
	case codes.Canceled:
		return context.Canceled, false
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded, false
	}
	kind := codeKinds[st.Code()] // KindUnknown when absent
	return &connector.Error{Kind: kind, Message: st.Message()}, kind == connector.KindUnavailable
}

func timeToPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromPB(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func sessionToPB(s connector.Session) *connectorv1.Session {
	return &connectorv1.Session{Config: s.Config, Credentials: s.Credentials}
}

func sessionFromPB(s *connectorv1.Session) connector.Session {
	return connector.Session{Config: raw(s.GetConfig()), Credentials: raw(s.GetCredentials())}
}

func raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return b
}

func metaToPB(m connector.Meta) *connectorv1.Meta {
	out := &connectorv1.Meta{Credentials: m.Credentials, Calls: int64(m.Calls), ServerTime: timeToPB(m.ServerTime)}
	if m.Usage != nil {
		out.Usage = usageToPB(*m.Usage)
	}
	return out
}

func metaFromPB(m *connectorv1.Meta) connector.Meta {
	out := connector.Meta{Credentials: raw(m.GetCredentials()), Calls: int(m.GetCalls()), ServerTime: timeFromPB(m.GetServerTime())}
	if m.GetUsage() != nil {
		u := usageFromPB(m.GetUsage())
		out.Usage = &u
	}
	return out
}

func usageToPB(u connector.Usage) *connectorv1.Usage {
	return &connectorv1.Usage{Used: u.Used, Max: u.Max, ObservedAt: timeToPB(u.ObservedAt)}
}

func usageFromPB(u *connectorv1.Usage) connector.Usage {
	return connector.Usage{Used: u.GetUsed(), Max: u.GetMax(), ObservedAt: timeFromPB(u.GetObservedAt())}
}

func fieldsToJSON(f map[string]any) ([]byte, error) {
	if f == nil {
		return nil, nil
	}
	return json.Marshal(f)
}

func fieldsFromJSON(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode fields: %w", err)
	}
	return f, nil
}

func recordsToPB(recs []connector.Record) ([]*connectorv1.Record, error) {
	out := make([]*connectorv1.Record, len(recs))
	for i, r := range recs {
		fields, err := fieldsToJSON(r.Fields)
		if err != nil {
			return nil, fmt.Errorf("encode record %s: %w", r.ID, err)
		}
		out[i] = &connectorv1.Record{
			Id: r.ID, Object: r.Object, Fields: fields,
			LastModified: timeToPB(r.LastModified), LastModifiedById: r.LastModifiedByID,
			SystemModstamp: timeToPB(r.SystemModstamp), Deleted: r.Deleted,
		}
	}
	return out, nil
}

func recordsFromPB(recs []*connectorv1.Record) ([]connector.Record, error) {
	out := make([]connector.Record, len(recs))
	for i, r := range recs {
		fields, err := fieldsFromJSON(r.GetFields())
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", r.GetId(), err)
		}
		out[i] = connector.Record{
			ID: r.GetId(), Object: r.GetObject(), Fields: fields,
			LastModified: timeFromPB(r.GetLastModified()), LastModifiedByID: r.GetLastModifiedById(),
			SystemModstamp: timeFromPB(r.GetSystemModstamp()), Deleted: r.GetDeleted(),
		}
	}
	return out, nil
}

func descriptionToPB(d *connector.Description) *connectorv1.DescribeResponse {
	out := &connectorv1.DescribeResponse{Name: d.Name, Version: d.Version, BulkThreshold: int64(d.BulkThreshold), Meta: metaToPB(d.Meta)}
	for _, c := range d.ConfigFields {
		out.ConfigFields = append(out.ConfigFields, &connectorv1.ConfigField{Name: c.Name, Description: c.Description, Required: c.Required, Secret: c.Secret})
	}
	for _, c := range d.Capabilities {
		out.Capabilities = append(out.Capabilities, string(c))
	}
	for _, o := range d.Objects {
		po := &connectorv1.Object{Name: o.Name, Label: o.Label, Createable: o.Createable, Updateable: o.Updateable, Deletable: o.Deletable}
		for _, f := range o.Fields {
			po.Fields = append(po.Fields, &connectorv1.Field{
				Name: f.Name, Label: f.Label, Type: string(f.Type), Createable: f.Createable, Updateable: f.Updateable,
				Nillable: f.Nillable, Length: int64(f.Length), PicklistValues: f.PicklistValues, ExternalId: f.ExternalID,
				ReferenceTo: f.ReferenceTo,
			})
		}
		out.Objects = append(out.Objects, po)
	}
	out.Contract = contractToPB(d.Contract)
	return out
}

func descriptionFromPB(d *connectorv1.DescribeResponse) *connector.Description {
	out := &connector.Description{Name: d.GetName(), Version: d.GetVersion(), BulkThreshold: int(d.GetBulkThreshold()), Meta: metaFromPB(d.GetMeta())}
	for _, c := range d.GetConfigFields() {
		out.ConfigFields = append(out.ConfigFields, connector.ConfigField{Name: c.GetName(), Description: c.GetDescription(), Required: c.GetRequired(), Secret: c.GetSecret()})
	}
	for _, c := range d.GetCapabilities() {
		out.Capabilities = append(out.Capabilities, connector.Capability(c))
	}
	for _, o := range d.GetObjects() {
		obj := connector.Object{Name: o.GetName(), Label: o.GetLabel(), Createable: o.GetCreateable(), Updateable: o.GetUpdateable(), Deletable: o.GetDeletable()}
		for _, f := range o.GetFields() {
			obj.Fields = append(obj.Fields, connector.Field{
				Name: f.GetName(), Label: f.GetLabel(), Type: connector.FieldType(f.GetType()), Createable: f.GetCreateable(),
				Updateable: f.GetUpdateable(), Nillable: f.GetNillable(), Length: int(f.GetLength()),
				PicklistValues: f.GetPicklistValues(), ExternalID: f.GetExternalId(), ReferenceTo: f.GetReferenceTo(),
			})
		}
		out.Objects = append(out.Objects, obj)
	}
	out.Contract = contractFromPB(d.GetContract())
	return out
}

// contractToPB and contractFromPB carry a data contract; nil (no contract:
// Salesforce's shape) stays unset on the wire, and so does each part the
// connector does not support.
func contractToPB(c *connector.DataContract) *connectorv1.DataContract {
	if c == nil {
		return nil
	}
	out := &connectorv1.DataContract{}
	if ct := c.Contact; ct != nil {
		p := ct.Person
		out.Contact = &connectorv1.ContactObjects{
			Person: &connectorv1.PersonObject{Object: p.Object, Email: p.Email, Company: p.Company},
			Fields: mappingsToPB(ct.Fields),
		}
		if pr := ct.Prospect; pr != nil {
			out.Contact.Prospect = &connectorv1.ProspectObject{Object: pr.Object, Email: pr.Email, CompanyName: pr.CompanyName,
				Owner: pr.Owner, Converted: pr.Converted, ConvertedTo: pr.ConvertedTo}
		}
	}
	if co := c.Company; co != nil {
		out.Company = &connectorv1.CompanyObject{Object: co.Object, Name: co.Name, Domain: co.Domain, Fields: mappingsToPB(co.Fields)}
	}
	if ca := c.Campaign; ca != nil {
		out.Campaign = &connectorv1.CampaignObject{Object: ca.Object, Name: ca.Name, Fields: mappingsToPB(ca.Fields)}
	}
	if m := c.CampaignMember; m != nil {
		out.CampaignMember = &connectorv1.MembershipObject{Object: m.Object, Campaign: m.Campaign, Person: m.Person,
			Prospect: m.Prospect, Fields: mappingsToPB(m.Fields)}
	}
	if t := c.Task; t != nil {
		out.Task = &connectorv1.TaskObject{Object: t.Object, Who: t.Who, Subject: t.Subject, Status: t.Status,
			Due: t.Due, Description: t.Description}
	}
	return out
}

func contractFromPB(c *connectorv1.DataContract) *connector.DataContract {
	if c == nil {
		return nil
	}
	out := &connector.DataContract{}
	if ct := c.GetContact(); ct != nil {
		p := ct.GetPerson()
		out.Contact = &connector.ContactObjects{
			Person: connector.PersonObject{Object: p.GetObject(), Email: p.GetEmail(), Company: p.GetCompany()},
			Fields: mappingsFromPB(ct.GetFields()),
		}
		if pr := ct.GetProspect(); pr != nil {
			out.Contact.Prospect = &connector.ProspectObject{Object: pr.GetObject(), Email: pr.GetEmail(),
				CompanyName: pr.GetCompanyName(), Owner: pr.GetOwner(), Converted: pr.GetConverted(), ConvertedTo: pr.GetConvertedTo()}
		}
	}
	if co := c.GetCompany(); co != nil {
		out.Company = &connector.CompanyObject{Object: co.GetObject(), Name: co.GetName(), Domain: co.GetDomain(),
			Fields: mappingsFromPB(co.GetFields())}
	}
	if ca := c.GetCampaign(); ca != nil {
		out.Campaign = &connector.CampaignObject{Object: ca.GetObject(), Name: ca.GetName(), Fields: mappingsFromPB(ca.GetFields())}
	}
	if m := c.GetCampaignMember(); m != nil {
		out.CampaignMember = &connector.MembershipObject{Object: m.GetObject(), Campaign: m.GetCampaign(), Person: m.GetPerson(),
			Prospect: m.GetProspect(), Fields: mappingsFromPB(m.GetFields())}
	}
	if t := c.GetTask(); t != nil {
		out.Task = &connector.TaskObject{Object: t.GetObject(), Who: t.GetWho(), Subject: t.GetSubject(), Status: t.GetStatus(),
			Due: t.GetDue(), Description: t.GetDescription()}
	}
	return out
}

func mappingsToPB(ms []connector.FieldMapping) []*connectorv1.FieldMapping {
	var out []*connectorv1.FieldMapping
	for _, m := range ms {
		out = append(out, &connectorv1.FieldMapping{Field: m.Field, CrmField: m.CRMField})
	}
	return out
}

func mappingsFromPB(ms []*connectorv1.FieldMapping) []connector.FieldMapping {
	var out []connector.FieldMapping
	for _, m := range ms {
		out = append(out, connector.FieldMapping{Field: m.GetField(), CRMField: m.GetCrmField()})
	}
	return out
}

func operationsToPB(ops []connector.Operation) ([]*connectorv1.Operation, error) {
	out := make([]*connectorv1.Operation, len(ops))
	for i, op := range ops {
		fields, err := fieldsToJSON(op.Fields)
		if err != nil {
			return nil, fmt.Errorf("encode operation %d (%s %s): %w", i, op.Kind, op.Object, err)
		}
		out[i] = &connectorv1.Operation{Kind: string(op.Kind), Object: op.Object, Id: op.ID, ExternalIdField: op.ExternalIDField, ExternalId: op.ExternalID, Fields: fields}
	}
	return out, nil
}

func operationsFromPB(ops []*connectorv1.Operation) ([]connector.Operation, error) {
	out := make([]connector.Operation, len(ops))
	for i, op := range ops {
		fields, err := fieldsFromJSON(op.GetFields())
		if err != nil {
			return nil, fmt.Errorf("operation %d: %w", i, err)
		}
		out[i] = connector.Operation{
			Kind: connector.OpKind(op.GetKind()), Object: op.GetObject(), ID: op.GetId(),
			ExternalIDField: op.GetExternalIdField(), ExternalID: op.GetExternalId(), Fields: fields,
		}
	}
	return out, nil
}

func resultsToPB(rs []connector.Result) []*connectorv1.Result {
	out := make([]*connectorv1.Result, len(rs))
	for i, r := range rs {
		out[i] = &connectorv1.Result{Id: r.ID, Created: r.Created}
		if e := r.Error; e != nil {
			out[i].Error = &connectorv1.RecordError{Code: wireString(e.Code, maxMessageRunes), Message: wireString(e.Message, maxMessageRunes),
				Fields: e.Fields, Retryable: e.Retryable}
		}
	}
	return out
}

func resultsFromPB(rs []*connectorv1.Result) []connector.Result {
	out := make([]connector.Result, len(rs))
	for i, r := range rs {
		out[i] = connector.Result{ID: r.GetId(), Created: r.GetCreated()}
		if e := r.GetError(); e != nil {
			out[i].Error = &connector.RecordError{Code: e.GetCode(), Message: e.GetMessage(), Fields: e.GetFields(), Retryable: e.GetRetryable()}
		}
	}
	return out
}
