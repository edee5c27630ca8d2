package outbound

import (
	"fmt"
	"regexp"
	"time"

	"github.com/crmsync/crmsync/internal/record"
)

// MembershipAction is what a campaign-membership change does.
type MembershipAction string

const (
	MemberAdd    MembershipAction = "ADD"
	MemberUpdate MembershipAction = "UPDATE"
	MemberRemove MembershipAction = "REMOVE"
)

// Membership returns the change that adds, updates or removes a contact's
// membership of a campaign.
func Membership(campaignID, contactID string, action MembershipAction, status *string, source record.Source, at time.Time) (Change, error) {
	if campaignID == "" || contactID == "" {
		return Change{}, &InputError{Problems: []Problem{{Message: "a membership names a campaignId and a contactId"}}}
	}
	c := Change{Type: record.TypeCampaignMember, ID: MemberID(campaignID, contactID), Source: source, Op: OpUpsert,
		Fields: map[string]FieldChange{
			FieldCampaignID: {Value: campaignID, ChangedAt: at},
			FieldContactID:  {Value: contactID, ChangedAt: at},
		}}
	switch action {
	case MemberAdd, MemberUpdate:
		if status != nil {
			c.Fields["status"] = FieldChange{Value: *status, ChangedAt: at}
		}
	case MemberRemove:
		c.Op = OpRemove
	default:
		return Change{}, &InputError{Problems: []Problem{{Message: fmt.Sprintf("unknown membership action %q", action)}}}
	}
	return c, nil
}

// WorkflowKind is a workflow "Salesforce node" action.
type WorkflowKind string

const (
	WorkflowCreateTask    WorkflowKind = "CREATE_TASK"
	WorkflowAddToCampaign WorkflowKind = "ADD_TO_CAMPAIGN"
	WorkflowAssignToQueue WorkflowKind = "ASSIGN_TO_QUEUE"
)

// Task is the Salesforce Task a workflow creates.
type Task struct {
	Subject     string
	Status      string
	DueDate     string // YYYY-MM-DD
	Description string
}

// WorkflowAction is one run of a workflow's Salesforce node.
type WorkflowAction struct {
	Kind WorkflowKind
	// ActionID identifies the run: retrying it creates nothing twice.
	ActionID   string
	ContactID  string
	Task       *Task
	CampaignID string
	Status     *string
	QueueID    string
}

var crmID = regexp.MustCompile(`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`)

// Change turns a workflow action into the change it makes.
func (a WorkflowAction) Change(now time.Time) (Change, error) {
	bad := func(format string, args ...any) (Change, error) {
		return Change{}, &InputError{Problems: []Problem{{Message: fmt.Sprintf(format, args...)}}}
	}
	if a.ContactID == "" {
		return bad("%s needs a contactId", a.Kind)
	}
	switch a.Kind {
	case WorkflowCreateTask:
		if a.ActionID == "" || a.Task == nil || a.Task.Subject == "" {
			return bad("CREATE_TASK needs an actionId and a task with a subject")
		}
		if a.Task.DueDate != "" {
			if _, err := time.Parse(time.DateOnly, a.Task.DueDate); err != nil {
				return bad("task dueDate %q is not a YYYY-MM-DD date", a.Task.DueDate)
			}
		}
		fields := map[string]FieldChange{
			FieldContactID: {Value: a.ContactID, ChangedAt: now},
			"subject":      {Value: a.Task.Subject, ChangedAt: now},
		}
		for name, v := range map[string]string{"status": a.Task.Status, "dueDate": a.Task.DueDate, "description": a.Task.Description} {
			if v != "" {
				fields[name] = FieldChange{Value: v, ChangedAt: now}
			}
		}
		return Change{Type: record.TypeTask, ID: a.ActionID, Source: record.SourceWorkflow, Op: OpUpsert, Fields: fields}, nil
	case WorkflowAddToCampaign:
		if a.CampaignID == "" {
			return bad("ADD_TO_CAMPAIGN needs a campaignId")
		}
		return Membership(a.CampaignID, a.ContactID, MemberAdd, a.Status, record.SourceWorkflow, now)
	case WorkflowAssignToQueue:
		if !crmID.MatchString(a.QueueID) {
			return bad("ASSIGN_TO_QUEUE needs a queueId that is a 15- or 18-character Salesforce id, got %q", a.QueueID)
		}
		return Change{Type: record.TypeContact, ID: a.ContactID, Source: record.SourceWorkflow, Op: OpUpsert,
			Fields: map[string]FieldChange{FieldOwnerID: {Value: a.QueueID, ChangedAt: now}}}, nil
	}
	return bad("unknown workflow action %q", a.Kind)
}
