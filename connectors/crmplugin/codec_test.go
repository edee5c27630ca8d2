package crmplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin/internal/connectorv1"
)

// The codec's tests follow terraform-plugin-go's toproto/fromproto tests:
// one table per direction, each case an input and the exact expected
// output, compared with cmp; then a round trip over every kind.

// wire sends a status as gRPC does: the status proto is marshalled into the
// trailer and read back. A status that does not marshal loses its details.
func wire(t *testing.T, err error) error {
	t.Helper()
	b, merr := proto.Marshal(status.Convert(err).Proto())
	if merr != nil {
		t.Fatalf("the status does not marshal (gRPC would drop its details): %v", merr)
	}
	p := &spb.Status{}
	if uerr := proto.Unmarshal(b, p); uerr != nil {
		t.Fatalf("unmarshal status: %v", uerr)
	}
	return status.ErrorProto(p)
}

// encoded is a status's code, message and connector detail.
type encoded struct {
	Code    codes.Code
	Message string
	Detail  *connectorv1.Error
}

func encode(err error) encoded {
	st := status.Convert(err)
	out := encoded{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		if e, ok := d.(*connectorv1.Error); ok {
			out.Detail = e
		}
	}
	return out
}

func TestErrorToStatus(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxMessageRunes+10)
	testCases := map[string]struct {
		in       error
		expected encoded
	}{
		"credentials": {
			in:       connector.Errorf(connector.KindCredentials, "INVALID_SESSION_ID: Session expired"),
			expected: encoded{codes.Unauthenticated, "INVALID_SESSION_ID: Session expired", &connectorv1.Error{Kind: int32(connector.KindCredentials), Message: "INVALID_SESSION_ID: Session expired"}},
		},
		"rate limited with retry-after": {
			in: connector.RateLimited(90*time.Second, "REQUEST_LIMIT_EXCEEDED"),
			expected: encoded{codes.ResourceExhausted, "REQUEST_LIMIT_EXCEEDED",
				&connectorv1.Error{Kind: int32(connector.KindRateLimited), Message: "REQUEST_LIMIT_EXCEEDED", RetryAfter: durationpb.New(90 * time.Second)}},
		},
		"unavailable": {
			in:       connector.Errorf(connector.KindUnavailable, "503"),
			expected: encoded{codes.Unavailable, "503", &connectorv1.Error{Kind: int32(connector.KindUnavailable), Message: "503"}},
		},
		"unsupported": {
			in:       connector.ErrUnsupported,
			expected: encoded{codes.Unimplemented, "connector: unsupported", &connectorv1.Error{Kind: int32(connector.KindUnsupported), Message: "connector: unsupported"}},
		},
		"invalid": {
			in:       connector.Errorf(connector.KindInvalid, "no field X"),
			expected: encoded{codes.InvalidArgument, "no field X", &connectorv1.Error{Kind: int32(connector.KindInvalid), Message: "no field X"}},
		},
		"plain error is unknown": {
			in:       errors.New("boom"),
			expected: encoded{codes.Unknown, "boom", &connectorv1.Error{Kind: int32(connector.KindUnknown), Message: "boom"}},
		},
		"wrapped keeps the whole message": {
			in: fmt.Errorf("fetch: %w", connector.Errorf(connector.KindCredentials, "revoked")),
			expected: encoded{codes.Unauthenticated, "fetch: connector: credentials: revoked",
				&connectorv1.Error{Kind: int32(connector.KindCredentials), Message: "fetch: connector: credentials: revoked"}},
		},
		"invalid UTF-8 is replaced": {
			in:       connector.Errorf(connector.KindCredentials, "bad \xff\xfe token"),
			expected: encoded{codes.Unauthenticated, "bad \uFFFD token", &connectorv1.Error{Kind: int32(connector.KindCredentials), Message: "bad \uFFFD token"}},
		},
		"long message is cut between characters": {
			in: &connector.Error{Kind: connector.KindInvalid, Message: long},
			expected: encoded{codes.InvalidArgument, long[:2*maxMessageRunes] + "…",
				&connectorv1.Error{Kind: int32(connector.KindInvalid), Message: long[:2*maxMessageRunes] + "…"}},
		},
		"a kind this side does not know is never OK": {
			in:       &connector.Error{Kind: connector.Kind(99), Message: "from the future"},
			expected: encoded{codes.Unknown, "from the future", &connectorv1.Error{Kind: 99, Message: "from the future"}},
		},
		"canceled": {
			in:       fmt.Errorf("memcrm Check: %w", context.Canceled),
			expected: encoded{codes.Canceled, "memcrm Check: context canceled", nil},
		},
		"deadline inside a connector error": {
			in:       connector.Errorf(connector.KindUnavailable, "call: %w", context.DeadlineExceeded),
			expected: encoded{codes.DeadlineExceeded, "connector: unavailable: call: context deadline exceeded", nil},
		},
	}
	for name, testCase := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := encode(wire(t, errorToStatus(testCase.in)))
			if diff := cmp.Diff(testCase.expected, got, protocmp.Transform()); diff != "" {
				t.Errorf("unexpected difference (-want +got): %s", diff)
			}
		})
	}
}

func TestStatusToError(t *testing.T) {
	t.Parallel()
	withDetail := func(code codes.Code, msg string, d *connectorv1.Error) error {
		st, err := status.New(code, msg).WithDetails(d)
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	type decoded struct {
		Err       error
		Transport bool
	}
	testCases := map[string]struct {
		in       error
		expected decoded
	}{
		"detail decides": {
			in:       withDetail(codes.ResourceExhausted, "x", &connectorv1.Error{Kind: int32(connector.KindRateLimited), Message: "spent", RetryAfter: durationpb.New(time.Minute)}),
			expected: decoded{Err: &connector.Error{Kind: connector.KindRateLimited, Message: "spent", RetryAfter: time.Minute}},
		},
		"unknown kind in the detail: the code decides": {
			in:       withDetail(codes.Unauthenticated, "x", &connectorv1.Error{Kind: 99, Message: "newer plugin"}),
			expected: decoded{Err: &connector.Error{Kind: connector.KindCredentials, Message: "newer plugin"}},
		},
		"no detail, unauthenticated": {
			in:       status.Error(codes.Unauthenticated, "expired"),
			expected: decoded{Err: &connector.Error{Kind: connector.KindCredentials, Message: "expired"}},
		},
		"no detail, resource exhausted": {
			in:       status.Error(codes.ResourceExhausted, "spent"),
			expected: decoded{Err: &connector.Error{Kind: connector.KindRateLimited, Message: "spent"}},
		},
		"no detail, unimplemented (a method the plugin binary lacks)": {
			in:       status.Error(codes.Unimplemented, "unknown method FetchChanges"),
			expected: decoded{Err: &connector.Error{Kind: connector.KindUnsupported, Message: "unknown method FetchChanges"}},
		},
		"no detail, invalid argument": {
			in:       status.Error(codes.InvalidArgument, "bad"),
			expected: decoded{Err: &connector.Error{Kind: connector.KindInvalid, Message: "bad"}},
		},
		"no detail, unavailable is a transport failure": {
			in:       status.Error(codes.Unavailable, "connection refused"),
			expected: decoded{Err: &connector.Error{Kind: connector.KindUnavailable, Message: "connection refused"}, Transport: true},
		},
		"no detail, internal is unknown": {
			in:       status.Error(codes.Internal, "grpc: error while marshaling"),
			expected: decoded{Err: &connector.Error{Kind: connector.KindUnknown, Message: "grpc: error while marshaling"}},
		},
		"canceled": {
			in:       status.Error(codes.Canceled, "context canceled"),
			expected: decoded{Err: context.Canceled},
		},
		"deadline": {
			in:       status.Error(codes.DeadlineExceeded, "deadline"),
			expected: decoded{Err: context.DeadlineExceeded},
		},
	}
	for name, testCase := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err, transport := statusToError(context.Background(), wire(t, testCase.in))
			got := decoded{Err: err, Transport: transport}
			if diff := cmp.Diff(testCase.expected, got, cmp.Comparer(sameError)); diff != "" {
				t.Errorf("unexpected difference (-want +got): %s", diff)
			}
		})
	}
}

// sameError compares connector errors by value and others by identity.
func sameError(a, b error) bool {
	var ca, cb *connector.Error
	if errors.As(a, &ca) && errors.As(b, &cb) {
		return ca.Kind == cb.Kind && ca.Message == cb.Message && ca.RetryAfter == cb.RetryAfter
	}
	return a == b
}

// Every kind, with any message, crosses the codec with its kind, its
// retry-after and a readable message.
func TestErrorRoundTripEveryKind(t *testing.T) {
	t.Parallel()
	messages := map[string]string{
		"empty":         "",
		"plain":         "INVALID_SESSION_ID: Session expired or invalid",
		"invalid UTF-8": "salesforce: 401 <html>\xc3\x28 caf\xe9</html>",
		"cut mid-rune":  strings.Repeat("x", 199) + "\xe2\x82",
		"long":          strings.Repeat("日本", 3*maxMessageRunes),
	}
	for _, kind := range connector.Kinds() {
		for mname, msg := range messages {
			t.Run(kind.String()+"/"+mname, func(t *testing.T) {
				t.Parallel()
				sent := &connector.Error{Kind: kind, Message: msg}
				if kind == connector.KindRateLimited || kind == connector.KindUnavailable {
					sent.RetryAfter = 42 * time.Second
				}
				got, _ := statusToError(context.Background(), wire(t, errorToStatus(sent)))
				var ce *connector.Error
				if !errors.As(got, &ce) {
					t.Fatalf("not a *connector.Error: %#v", got)
				}
				if ce.Kind != kind || ce.RetryAfter != sent.RetryAfter {
					t.Fatalf("got kind %v retry-after %v, want %v %v", ce.Kind, ce.RetryAfter, kind, sent.RetryAfter)
				}
				if connector.Retryable(got) != connector.Retryable(sent) {
					t.Fatalf("retryable changed across the boundary")
				}
				if !utf8.ValidString(ce.Message) || utf8.RuneCountInString(ce.Message) > maxMessageRunes+1 {
					t.Fatalf("message not valid or not bounded: %d runes", utf8.RuneCountInString(ce.Message))
				}
				want := wireString(sent.Error(), 100)
				if msg != "" {
					want = wireString(msg, 100)
				}
				if !strings.HasPrefix(ce.Message, strings.TrimSuffix(want, "…")) {
					t.Fatalf("message %q does not start with %q", ce.Message, want)
				}
			})
		}
	}
}

// A description crosses the codec whole: capabilities, and the bulk
// threshold the host plans Bulk calls with.
func TestDescriptionRoundTrip(t *testing.T) {
	t.Parallel()
	tests := map[string]*connector.Description{
		"static, no bulk": {Name: "memcrm", Version: "1", Capabilities: []connector.Capability{connector.CapabilityUpsert},
			ConfigFields: []connector.ConfigField{{Name: "org", Description: "the org", Required: true}, {Name: "token", Secret: true}}},
		"bulk with the connection's threshold": {Name: "salesforce", Version: "1.0.0",
			Capabilities: []connector.Capability{connector.CapabilityFetchMany, connector.CapabilityBulk}, BulkThreshold: 2500},
		"objects and meta": {Name: "salesforce", Capabilities: []connector.Capability{connector.CapabilityBulk}, BulkThreshold: 10_000,
			Objects: []connector.Object{{Name: "Contact", Label: "Contact", Createable: true, Updateable: true, Fields: []connector.Field{
				{Name: "Email", Type: "email", Createable: true, Updateable: true, Nillable: true, Length: 80},
				{Name: "AccountId", Type: "reference", ReferenceTo: []string{"Account"}},
				{Name: "Conversion_Id__c", Type: "string", ExternalID: true, Length: 64},
				{Name: "LeadSource", Type: "picklist", PicklistValues: []string{"Web", "Other"}},
			}}},
			Meta: connector.Meta{Calls: 2}},
		// No contract stays no contract (Salesforce's shape), not an
		// empty one that supports nothing.
		"no contract":         {Name: "legacy", Version: "0.9"},
		"salesforce contract": {Name: "salesforce", Contract: connector.SalesforceContract()},
		"person-only contract": {Name: "jsoncrm", Contract: &connector.DataContract{
			Contact: &connector.ContactObjects{
				Person: connector.PersonObject{Object: "Person", Email: "Email", Company: "OrganizationId"},
				Fields: []connector.FieldMapping{{Field: "email", CRMField: "Email"}, {Field: "lastName", CRMField: "LastName"}},
			},
			Company: &connector.CompanyObject{Object: "Organization", Name: "Name", Domain: "Domain"},
		}},
	}
	for name, sent := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := proto.Marshal(descriptionToPB(sent))
			if err != nil {
				t.Fatal(err)
			}
			var pb connectorv1.DescribeResponse
			if err := proto.Unmarshal(b, &pb); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sent, descriptionFromPB(&pb)); diff != "" {
				t.Fatalf("description changed across the codec (-sent +got):\n%s", diff)
			}
		})
	}
}
