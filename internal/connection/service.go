package connection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/crmsync/crmsync/connectors/connector"
)

// Connectors hands out a connector by name. A name neither built in nor
// configured fails with an *UnknownConnectorError, a connector that cannot
// start with an *UnavailableError.
type Connectors interface {
	Connector(ctx context.Context, name string) (connector.Connector, error)
}

// Scheduler starts a flush now (after connecting, the queue may hold items
// accepted while disconnected).
type Scheduler interface {
	ScheduleNow(ctx context.Context, workspaceID int64) error
}

// InputError is a connection request the user must fix.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

// Service connects, checks and describes CRM connections.
type Service struct {
	store      *Store
	connectors Connectors
	sched      Scheduler
}

// NewService returns a Service.
func NewService(store *Store, connectors Connectors, sched Scheduler) *Service {
	return &Service{store: store, connectors: connectors, sched: sched}
}

// Get returns the workspace's connection or ErrNotConnected.
func (s *Service) Get(ctx context.Context, workspaceID int64) (*Connection, error) {
	return s.store.Get(ctx, workspaceID)
}

// Disconnect deletes the workspace's connection and its credentials.
func (s *Service) Disconnect(ctx context.Context, workspaceID int64) error {
	return s.store.Delete(ctx, workspaceID)
}

// Connect checks config and credentials with the named connector and, if
// they pass, creates or replaces the workspace's connection. Queued items
// are kept and a flush is scheduled.
func (s *Service) Connect(ctx context.Context, workspaceID int64, name string, config, credentials json.RawMessage) (*Connection, error) {
	if !json.Valid(config) || !isObject(config) {
		return nil, &InputError{"config must be a JSON object"}
	}
	if !json.Valid(credentials) || !isObject(credentials) {
		return nil, &InputError{"credentials must be a JSON object"}
	}
	crm, err := s.connectors.Connector(ctx, name)
	var unknown *UnknownConnectorError
	var unavail *UnavailableError
	switch {
	case errors.As(err, &unknown):
		return nil, &InputError{unknown.Error()}
	case errors.As(err, &unavail):
		return nil, &InputError{unavail.Error()}
	case err != nil:
		return nil, fmt.Errorf("connector %q: %w", name, err)
	}
	resp, err := crm.Check(ctx, connector.CheckRequest{Session: connector.Session{Config: config, Credentials: credentials}})
	if err != nil {
		switch connector.KindOf(err) {
		case connector.KindCredentials, connector.KindInvalid:
			return nil, &InputError{"the CRM refused the connection: " + err.Error()}
		}
		return nil, fmt.Errorf("check connection: %w", err)
	}
	if resp.Credentials != nil {
		credentials = resp.Credentials
	}
	// The objects the connector describes decide which record types are
	// routed to it (docs/connectors.md, "Routing").
	// A describe the CRM refuses (one of the objects is missing from the
	// org and the connector reports it as an error) leaves them unknown:
	// every record type is routed, as before routing existed.
	d, err := crm.Describe(ctx, connector.DescribeRequest{Session: connector.Session{Config: config, Credentials: credentials}})
	if err != nil && connector.KindOf(err) != connector.KindInvalid {
		return nil, fmt.Errorf("describe the CRM's objects: %w", err)
	}
	usage := resp.Usage
	var objects []string // nil: unknown
	var contract *connector.DataContract
	if err == nil {
		// The engine relies on every role the contract names: one
		// that does not fit the connector's own describe is refused
		// here, not found out field by field in the sync log.
		if contract = d.Contract; contract != nil {
			if verr := contract.Validate(d.Objects); verr != nil {
				return nil, &InputError{fmt.Sprintf("connector %q declares a data contract that does not fit its objects: %v", name, strings.ReplaceAll(verr.Error(), "\n", "; "))}
			}
		}
		if d.Credentials != nil {
			credentials = d.Credentials
		}
		if d.Usage != nil {
			usage = d.Usage
		}
		objects = make([]string, len(d.Objects))
		for i, o := range d.Objects {
			objects[i] = o.Name
		}
	}
	c, err := s.store.Save(ctx, workspaceID, name, config, credentials, resp.Identity, usage)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetDescription(ctx, c, objects, contract); err != nil {
		return nil, err
	}
	if err := s.sched.ScheduleNow(ctx, workspaceID); err != nil {
		return nil, err
	}
	return c, nil
}

// Describe returns the CRM's description of objects for the workspace's
// connection.
func (s *Service) Describe(ctx context.Context, workspaceID int64, objects []string) (*connector.Description, error) {
	c, err := s.store.Get(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	crm, err := s.connectors.Connector(ctx, c.Connector)
	if err != nil {
		return nil, fmt.Errorf("connector %q: %w", c.Connector, err)
	}
	session, err := s.store.Session(c)
	if err != nil {
		return nil, err
	}
	d, err := crm.Describe(ctx, connector.DescribeRequest{Session: session, Objects: objects})
	if d != nil {
		if oerr := s.store.Observe(ctx, c, d.Meta); oerr != nil {
			return nil, oerr
		}
	}
	if err != nil {
		if errors.Is(err, connector.ErrCredentials) {
			_ = s.store.MarkExpired(context.WithoutCancel(ctx), c, err.Error())
		}
		return nil, fmt.Errorf("describe %v: %w", objects, err)
	}
	return d, nil
}

// SetPaused pauses or resumes syncing by hand; resuming schedules a flush.
func (s *Service) SetPaused(ctx context.Context, workspaceID int64, paused bool) error {
	if err := s.store.SetPausedByUser(ctx, workspaceID, paused); err != nil {
		return err
	}
	if paused {
		return nil
	}
	return s.sched.ScheduleNow(ctx, workspaceID)
}

func isObject(raw json.RawMessage) bool {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// UserFacing marks the error as safe and useful to show to API clients.
func (*InputError) UserFacing() {}

// SetDailyLimit sets (or, with nil, clears) crmsync's own daily call limit.
// A negative limit, or one above the org's known allowance, is refused.
func (s *Service) SetDailyLimit(ctx context.Context, workspaceID int64, limit *int64) error {
	c, err := s.store.Get(ctx, workspaceID)
	if err != nil {
		return err
	}
	if limit != nil {
		switch {
		case *limit < 0:
			return &InputError{fmt.Sprintf("the daily limit must be 0 or more, got %d", *limit)}
		case c.APIMax.Valid && c.APIMax.Int64 > 0 && *limit > c.APIMax.Int64:
			return &InputError{fmt.Sprintf("the daily limit %d is above the org's daily API allowance of %d", *limit, c.APIMax.Int64)}
		}
	}
	if err := s.store.SetDailyLimit(ctx, c, limit); err != nil {
		return err
	}
	return s.sched.ScheduleNow(ctx, workspaceID) // a raised limit may end a pause
}
