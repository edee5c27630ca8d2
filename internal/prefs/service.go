package prefs

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/uptrace/bun"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/internal/record"
)

// Describer describes the CRM objects of a workspace's connection.
type Describer interface {
	Describe(ctx context.Context, workspaceID int64, objects []string) (*connector.Description, error)
}

// InputError is a preference the user must fix.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

// UserFacing marks the error as safe and useful to show to API clients.
func (*InputError) UserFacing() {}

// Service reads and changes preferences, validating field mappings against
// the CRM's describe.
type Service struct {
	db        bun.IDB
	describer Describer
}

// NewService returns a Service.
func NewService(db bun.IDB, describer Describer) *Service {
	return &Service{db: db, describer: describer}
}

// Objects returns every record type's preference.
func (s *Service) Objects(ctx context.Context, workspaceID int64) (map[record.Type]ObjectPreference, error) {
	return Objects(ctx, s.db, workspaceID)
}

// SetObject changes one record type's preference.
func (s *Service) SetObject(ctx context.Context, workspaceID int64, p ObjectPreference) error {
	if !p.RecordType.Valid() || p.RecordType == record.TypeTask {
		return &InputError{fmt.Sprintf("unknown record type %q", p.RecordType)}
	}
	if p.CreateAs == "" {
		p.CreateAs = CreateAsLead
	}
	if p.CreateAs != CreateAsLead && p.CreateAs != CreateAsContact {
		return &InputError{fmt.Sprintf("createAs must be LEAD or CONTACT, got %q", p.CreateAs)}
	}
	if err := s.refuseUnsupported(ctx, workspaceID, p.RecordType); err != nil {
		return err
	}
	return SetObject(ctx, s.db, workspaceID, p)
}

// refuseUnsupported refuses a preference of a record type the workspace's
// connection does not support (Routing).
func (s *Service) refuseUnsupported(ctx context.Context, workspaceID int64, t record.Type) error {
	r, err := LoadRouting(ctx, s.db, workspaceID)
	if err != nil {
		return err
	}
	if !r.Supported(t) {
		return r.refusal(t)
	}
	return nil
}

// Routing returns the workspace's routing (which record types its
// connection takes).
func (s *Service) Routing(ctx context.Context, workspaceID int64) (Routing, error) {
	return LoadRouting(ctx, s.db, workspaceID)
}

// Fields returns a record type's field mappings.
func (s *Service) Fields(ctx context.Context, workspaceID int64, t record.Type) ([]FieldMapping, error) {
	if !t.Valid() || t == record.TypeTask {
		return nil, &InputError{fmt.Sprintf("unknown record type %q", t)}
	}
	r, err := LoadRouting(ctx, s.db, workspaceID)
	if err != nil {
		return nil, err
	}
	return Fields(ctx, s.db, r.Contract, workspaceID, t)
}

var conversionField = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// SetField changes (or adds) a field mapping. The CRM field must exist on
// one of the record type's CRM objects, per the connection's describe, and
// be updateable there.
func (s *Service) SetField(ctx context.Context, workspaceID int64, m FieldMapping) error {
	if !m.RecordType.Valid() || m.RecordType == record.TypeTask {
		return &InputError{fmt.Sprintf("unknown record type %q", m.RecordType)}
	}
	if !conversionField.MatchString(m.Field) {
		return &InputError{fmt.Sprintf("invalid Conversion field name %q", m.Field)}
	}
	if !m.Mode.Valid() {
		return &InputError{fmt.Sprintf("unknown sync mode %q", m.Mode)}
	}
	r, err := LoadRouting(ctx, s.db, workspaceID)
	if err != nil {
		return err
	}
	if !r.Supported(m.RecordType) {
		return r.refusal(m.RecordType)
	}
	objects := r.Objects(m.RecordType)
	d, err := s.describer.Describe(ctx, workspaceID, objects)
	if err != nil {
		return fmt.Errorf("check CRM field %q: %w", m.CRMField, err)
	}
	var found, updateable bool
	for _, name := range objects {
		o, ok := d.Object(name)
		if !ok {
			continue
		}
		if f, ok := o.Field(m.CRMField); ok {
			found = true
			updateable = updateable || f.Updateable
		}
	}
	switch {
	case !found:
		return &InputError{fmt.Sprintf("CRM field %q is not a field of %s", m.CRMField, strings.Join(objects, " or "))}
	case !updateable:
		return &InputError{fmt.Sprintf("CRM field %q of %s is not updateable", m.CRMField, strings.Join(objects, " or "))}
	}
	return SetField(ctx, s.db, workspaceID, m)
}
