package sffake

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// CostStats returns what the cost model refused so far (zero without
// Options.Cost).
func (s *Server) CostStats() CostStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cost == nil {
		return CostStats{}
	}
	return s.cost.stats
}

// Clock returns the org clock (Set / Advance it to control timestamps and
// token expiry).
func (s *Server) Clock() *Clock { return s.clock }

// Insert creates a record as the sales rep, with the validation the API
// applies, without counting an API call. It is how tests seed an org.
func (s *Server) Insert(object string, fields map[string]any) (string, error) {
	return s.InsertAsUser(s.repUser, object, fields)
}

// InsertAsUser creates a record as userID without counting an API call.
func (s *Server) InsertAsUser(userID, object string, fields map[string]any) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.st.object(object)
	if obj == nil {
		return "", fmt.Errorf("insert %s: no such object", object)
	}
	if e := shapeError(obj, fields); e != nil {
		return "", fmt.Errorf("insert %s: %w", object, *e)
	}
	res := s.st.create(obj, fields, s.hookOp(userID))
	if res.errs != nil {
		return "", fmt.Errorf("insert %s: %w", object, res.errs[0])
	}
	return res.id, nil
}

// EditAsUser updates a record as userID (a sales rep editing in
// Salesforce): it bumps LastModifiedDate, LastModifiedById and
// SystemModstamp and counts no API call.
func (s *Server) EditAsUser(userID, object, id string, fields map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.st.object(object)
	if obj == nil {
		return fmt.Errorf("edit %s %s: no such object", object, id)
	}
	if e := shapeError(obj, fields); e != nil {
		return fmt.Errorf("edit %s %s: %w", object, id, *e)
	}
	res := s.st.update(obj, id, fields, s.hookOp(userID))
	if res.errs != nil {
		return fmt.Errorf("edit %s %s: %w", object, id, res.errs[0])
	}
	return nil
}

// DeleteAsUser soft-deletes a record as userID (it moves to the recycle
// bin: only queryAll still sees it).
func (s *Server) DeleteAsUser(userID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.st.remove(id, s.hookOp(userID))
	if res.errs != nil {
		return fmt.Errorf("delete %s: %w", id, res.errs[0])
	}
	return nil
}

// Touch bumps only SystemModstamp, as an automated system process does.
func (s *Server) Touch(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	norm, _ := NormalizeID(id)
	r := s.st.get(norm)
	if r == nil {
		return fmt.Errorf("touch %s: no such record", id)
	}
	c := r.clone()
	c.f["SystemModstamp"] = s.clock.Now().Truncate(time.Second)
	s.st.put(c)
	return nil
}

func (s *Server) hookOp(userID string) writeOp {
	return writeOp{actor: userID, now: s.clock.Now().Truncate(time.Second), hook: true}
}

// Get returns a copy of a record (deleted ones too) with values as they
// appear on the wire (datetimes formatted), and whether it exists.
func (s *Server) Get(object, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	norm, ok := NormalizeID(id)
	if !ok {
		return nil, false
	}
	r := s.st.get(norm)
	if r == nil || r.obj.Name != object {
		return nil, false
	}
	return wireCopy(r), true
}

// All returns every record of object, deleted ones included, in creation order.
func (s *Server) All(object string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, r := range s.st.sorted(object, true) {
		out = append(out, wireCopy(r))
	}
	return out
}

func wireCopy(r *record) map[string]any {
	m := make(map[string]any, len(r.f))
	for _, f := range r.obj.Fields {
		m[f.Name] = wireValue(r.f[f.Name])
	}
	return m
}

// ConvertLead converts a lead as a user converting it in Salesforce would:
// it creates an Account (Name = Company) and a Contact, and marks the lead
// converted (IsConverted, ConvertedContactId, ConvertedAccountId,
// ConvertedDate, Status "Closed - Converted"). The lead is read-only
// afterwards (CANNOT_UPDATE_CONVERTED_LEAD).
func (s *Server) ConvertLead(leadID string) (contactID, accountID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	norm, _ := NormalizeID(leadID)
	lead := s.st.get(norm)
	if lead == nil || lead.obj.Name != "Lead" || lead.deleted() {
		return "", "", fmt.Errorf("convert lead %s: no such lead", leadID)
	}
	if lead.f["IsConverted"] == true {
		return "", "", fmt.Errorf("convert lead %s: already converted", leadID)
	}
	op := s.hookOp(s.repUser)
	acc := s.st.create(s.st.objects["Account"], map[string]any{"Name": lead.f["Company"]}, op)
	if acc.errs != nil {
		return "", "", fmt.Errorf("convert lead %s: create account: %w", leadID, acc.errs[0])
	}
	contact := map[string]any{"AccountId": acc.id}
	for _, f := range []string{"FirstName", "LastName", "Email", "Phone", "Title", "Conversion_Id__c"} {
		contact[f] = lead.f[f]
	}
	if owner := lead.str("OwnerId"); objectOfID(owner) == "User" {
		contact["OwnerId"] = owner
	}
	con := s.st.create(s.st.objects["Contact"], contact, op)
	if con.errs != nil {
		return "", "", fmt.Errorf("convert lead %s: create contact: %w", leadID, con.errs[0])
	}
	conv := lead.clone()
	conv.f["IsConverted"] = true
	conv.f["ConvertedContactId"] = con.id
	conv.f["ConvertedAccountId"] = acc.id
	conv.f["ConvertedDate"] = op.now.Format("2006-01-02")
	conv.f["Status"] = "Closed - Converted"
	conv.f["LastModifiedDate"], conv.f["LastModifiedById"], conv.f["SystemModstamp"] = op.now, op.actor, op.now
	s.st.put(conv)
	return con.id, acc.id, nil
}

// AddQueue creates a Group of type Queue that may own records of objects
// (e.g. "Lead") and returns its 00G id.
func (s *Server) AddQueue(name string, objects ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.st.objects["Group"]
	r, errs := s.st.assign(obj, nil, map[string]any{"Name": name, "DeveloperName": name, "Type": "Queue"}, s.hookOp(s.intUser))
	if errs != nil {
		panic(fmt.Sprintf("add queue %s: %v", name, errs[0]))
	}
	list := ""
	for i, o := range objects {
		if i > 0 {
			list += ";"
		}
		list += o
	}
	r.f[queueObjectsKey] = list
	s.st.put(r)
	return r.id()
}

// SetLeadAssignmentOwner simulates an active lead assignment rule: leads
// created or updated without "Sforce-Auto-Assign: FALSE" get ownerID as
// owner. Empty disables the rule (the default).
func (s *Server) SetLeadAssignmentOwner(ownerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.assignOwner = ownerID
}

// RequestLog returns a copy of the request log, oldest first.
func (s *Server) RequestLog() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log[max(0, len(s.log)-s.logLimit):]...)
}

// ResetRequestLog empties the request log and the call counts.
func (s *Server) ResetRequestLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	s.calls = CallCounts{}
}

// Calls returns the calls served so far, by kind.
func (s *Server) Calls() CallCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Usage returns the API calls used in the current window and the allocation.
func (s *Server) Usage() (used, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.max
}

// SetDailyMax sets the DailyApiRequests allocation.
func (s *Server) SetDailyMax(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = n
}

// SetUsage sets the calls used in the current window (0 resets it).
func (s *Server) SetUsage(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used = n
}

// SetLatency sets the latency added to every call.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetQueryPageSize caps the rows per query page (1..2,000).
func (s *Server) SetQueryPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = max(1, min(2000, n))
}

// InjectFault adds an endpoint fault.
func (s *Server) InjectFault(f Fault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.endpoint = append(s.faults.endpoint, &endpointFault{Fault: f})
}

// InjectRecordFault adds a per-record write fault.
func (s *Server) InjectRecordFault(f RecordFault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.record = append(s.faults.record, &recordFault{RecordFault: f})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.endpoint, s.faults.record = nil, nil
}

// SetCommitLag simulates transactions in flight: a write becomes visible
// to queries and retrieves only once the org clock has passed its time by
// d, while it carries the SystemModstamp of its start. A sync cursor
// without a look-back window misses such records. 0 turns it off.
func (s *Server) SetCommitLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.commitLag = d
}

// ExpireQueryLocators ends every open query cursor: following a
// nextRecordsUrl then fails with INVALID_QUERY_LOCATOR.
func (s *Server) ExpireQueryLocators() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.cursors)
	s.openLocs = nil
}

// AddField adds a field (typically a custom one, Name ending in __c) to
// object, as an admin would in Setup. Describe then changes (and answers
// If-Modified-Since with 200 again).
func (s *Server) AddField(object string, f Field) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.st.object(object)
	if obj == nil {
		return fmt.Errorf("add field %s.%s: no such object", object, f.Name)
	}
	if obj.field(f.Name) != nil {
		return fmt.Errorf("add field %s.%s: the field exists", object, f.Name)
	}
	nf := f
	obj.Fields = append(obj.Fields, &nf)
	obj.fieldIndex[strings.ToLower(nf.Name)] = &nf
	s.schemaTime = s.clock.Now().Truncate(time.Second)
	return nil
}

// RemoveField deletes a field from object (for example Conversion_Id__c,
// to model an org without the optional external id field). Stored values
// of the field are dropped.
func (s *Server) RemoveField(object, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.st.object(object)
	if obj == nil || obj.field(name) == nil {
		return fmt.Errorf("remove field %s.%s: no such field", object, name)
	}
	f := obj.field(name)
	obj.Fields = slices.DeleteFunc(obj.Fields, func(x *Field) bool { return x == f })
	delete(obj.fieldIndex, strings.ToLower(name))
	for _, r := range s.st.recs[obj.Name] {
		delete(r.f, f.Name)
	}
	s.schemaTime = s.clock.Now().Truncate(time.Second)
	return nil
}
