// Package syncmodel is a reference model of crmsync's field decisions
// (docs/sync.md, docs/inbound.md): one record on both sides, as a pure
// function of its history of events — Conversion changes with their
// changedAt, sales-rep edits in the CRM, flushes (including writes whose
// outcome crmsync never learned), and pulls. It says what each side holds
// and what every flush and pull decides, field by field, with no database,
// queue or connector: property tests drive the real engine with the same
// events and compare.
package syncmodel

import (
	"time"

	"github.com/crmsync/crmsync/internal/prefs"
	"github.com/crmsync/crmsync/internal/record"
)

// Field is one synced field: its Conversion name, CRM name and mode.
type Field struct {
	Name     string
	CRMField string
	Mode     prefs.Mode
}

// Verdict is why a field was or was not sent (outbound) or applied
// (inbound): the kind of reason the sync log gives.
type Verdict string

const (
	Superseded      Verdict = "superseded"       // an older Conversion change: never sent
	Never           Verdict = "never"            // the mode never sends / applies
	Always          Verdict = "always"           // the mode always sends / applies
	Equal           Verdict = "equal"            // the CRM already has the value
	Blank           Verdict = "blank"            // the CRM value is blank
	NotBlank        Verdict = "not blank"        // the CRM value is not blank
	ConversionNewer Verdict = "conversion newer" // TWO_WAY: Conversion's change is newer
	SameTime        Verdict = "same time"        // TWO_WAY: a tie, which goes to the CRM
	CRMNewer        Verdict = "crm newer"        // TWO_WAY: the CRM value is newer
)

// Decision is one field's verdict in a flush (Act: sent) or a pull (Act:
// applied). Pulls decide only fields whose values differ.
type Decision struct {
	Field   string
	Act     bool
	Verdict Verdict
}

// Fault is what goes wrong with a flush's write call.
type Fault int

const (
	// NoFault: the write succeeds and its outcome is recorded.
	NoFault Fault = iota
	// LostResponse: the CRM applies the write, crmsync never learns it
	// (a crash or timeout after the call).
	LostResponse
	// FailedCall: the write call fails before reaching the CRM.
	FailedCall
)

type convValue struct {
	v  any
	at time.Time
	// second: a value from the CRM whose time is a LastModifiedDate.
	second bool
}

// supersedes mirrors record.FieldState.Supersedes.
func (c convValue) supersedes(at time.Time) bool {
	if c.second {
		return !at.Truncate(time.Second).After(c.at)
	}
	return c.at.After(at)
}

type stamp struct {
	at      time.Time
	written bool
}

// newer compares a Conversion time against a CRM value's stamp: +1 when
// the Conversion change is newer, 0 on a tie, -1 when the CRM value is.
func (s stamp) compare(t time.Time) int {
	if !s.written {
		t = t.Truncate(time.Second)
	}
	return t.Compare(s.at)
}

type known struct {
	v  any
	st stamp
}

type item struct {
	v          any
	at         time.Time
	superseded bool
}

// Model is one record on both sides and what crmsync knows.
type Model struct {
	fields []Field
	// Conversion's side, by Conversion field.
	conv map[string]convValue
	// The CRM's side, by CRM field, and its record stamps.
	crm          map[string]any
	lastModified time.Time
	// What crmsync knows of the CRM record, by CRM field: the snapshot
	// (values last written or read) and writes whose outcome it missed.
	snapshot, pending map[string]known
	// pulled is the CRM modification the last pull read; modified says the
	// CRM record changed since (a change feed returns it).
	pulled   time.Time
	modified bool
	// queue holds the queued changes, one map per ingested change.
	queue []map[string]item
}

// New returns the model of a record Conversion created with values (every
// field changed at changedAt), flushed (a create: every field but
// DO_NOT_SYNC ones, the CRM stamping it createdAt) and pulled once.
func New(fields []Field, values map[string]any, changedAt, createdAt time.Time) *Model {
	m := &Model{fields: fields, conv: map[string]convValue{}, crm: map[string]any{},
		snapshot: map[string]known{}, pending: map[string]known{}}
	for _, f := range fields {
		m.conv[f.Name] = convValue{v: values[f.Name], at: changedAt}
		if f.Mode != prefs.DoNotSync {
			m.crm[f.CRMField] = values[f.Name]
			m.snapshot[f.CRMField] = known{v: values[f.Name], st: stamp{at: changedAt, written: true}}
		}
	}
	m.lastModified, m.modified = createdAt.Truncate(time.Second), true
	m.Pull()
	return m
}

// Conversion returns Conversion's value of a field.
func (m *Model) Conversion(field string) any { return m.conv[field].v }

// CRM returns the CRM's value of a field.
func (m *Model) CRM(crmField string) any { return m.crm[crmField] }

// Edit is a sales rep setting a CRM field at now (the CRM's clock).
func (m *Model) Edit(crmField string, v any, now time.Time) {
	m.crm[crmField] = v
	m.lastModified = now.Truncate(time.Second)
	m.modified = true
}

// Change is Conversion changing a field at changedAt (ingest): a change
// older than the field's value does not replace it and is queued as
// superseded.
func (m *Model) Change(field string, v any, changedAt time.Time) {
	cur, ok := m.conv[field]
	sup := ok && cur.supersedes(changedAt)
	if !sup {
		m.conv[field] = convValue{v: v, at: changedAt}
	}
	m.queue = append(m.queue, map[string]item{field: {v: v, at: changedAt, superseded: sup}})
}

// Queued reports whether changes wait for a flush.
func (m *Model) Queued() bool { return len(m.queue) > 0 }

// crmStamp is when the CRM's value v of crmField became true, as crmsync
// knows it (record.Known.Stamp).
func (m *Model) crmStamp(crmField string, v any) stamp {
	if s, ok := m.snapshot[crmField]; ok && record.SameValue(s.v, v) {
		return s.st
	}
	if p, ok := m.pending[crmField]; ok && record.SameValue(p.v, v) {
		return p.st
	}
	return stamp{at: m.lastModified}
}

// refresh stores the CRM's values of fields as the snapshot, each with the
// stamp it is known by.
func (m *Model) refresh(read func(Field) bool) {
	next := map[string]known{}
	for _, f := range m.fields {
		if read(f) {
			next[f.CRMField] = known{v: m.crm[f.CRMField], st: m.crmStamp(f.CRMField, m.crm[f.CRMField])}
		}
	}
	for k, v := range next {
		m.snapshot[k] = v
	}
}

// Flush runs a flush at now (the CRM's clock) whose write, if any, meets
// fault. It returns the field decisions the sync log shows (none when
// nothing was queued or the write failed) and whether a write was sent.
func (m *Model) Flush(now time.Time, fault Fault) ([]Decision, bool) {
	if len(m.queue) == 0 {
		return nil, false
	}
	write := map[string]item{}
	for _, it := range m.queue {
		for name, c := range it {
			if prev, ok := write[name]; !ok || !prev.at.After(c.at) {
				write[name] = c
			}
		}
	}
	var out []Decision
	sent := map[string]item{}
	for _, f := range m.fields {
		c, ok := write[f.Name]
		if !ok {
			continue
		}
		d := m.decideOutbound(f, c)
		out = append(out, d)
		if d.Act {
			sent[f.CRMField] = c
		}
	}
	if len(sent) > 0 && fault != NoFault {
		for k, c := range sent {
			m.pending[k] = known{v: c.v, st: stamp{at: c.at, written: true}}
		}
		if fault == LostResponse {
			m.apply(sent, now)
		}
		return nil, true
	}
	m.refresh(func(Field) bool { return true })
	if len(sent) > 0 {
		m.apply(sent, now)
		for k, c := range sent {
			m.snapshot[k] = known{v: c.v, st: stamp{at: c.at, written: true}}
		}
	}
	m.pending = map[string]known{}
	m.queue = nil
	return out, len(sent) > 0
}

func (m *Model) apply(sent map[string]item, now time.Time) {
	for k, c := range sent {
		m.crm[k] = c.v
	}
	m.lastModified = now.Truncate(time.Second)
	m.modified = true
}

// decideOutbound is the outbound column of the decision table.
func (m *Model) decideOutbound(f Field, c item) Decision {
	d := Decision{Field: f.Name}
	if c.superseded || m.conv[f.Name].supersedes(c.at) {
		d.Verdict = Superseded
		return d
	}
	if f.Mode == prefs.DoNotSync {
		d.Verdict = Never
		return d
	}
	cur := m.crm[f.CRMField]
	if record.SameValue(cur, c.v) {
		d.Verdict = Equal
		return d
	}
	switch f.Mode {
	case prefs.AlwaysPreferConversion:
		d.Act, d.Verdict = true, Always
	case prefs.AlwaysPreferSalesforce:
		d.Verdict = Never
	case prefs.PreferSalesforceUnlessEmpty:
		d.Act, d.Verdict = record.Blank(cur), NotBlank
		if d.Act {
			d.Verdict = Blank
		}
	case prefs.TwoWay:
		switch m.crmStamp(f.CRMField, cur).compare(c.at) {
		case 1:
			d.Act, d.Verdict = true, ConversionNewer
		case 0:
			d.Verdict = SameTime
		default:
			d.Verdict = CRMNewer
		}
	}
	return d
}

// Pull runs a pull. The change feed returns the record when the CRM
// modified it since the last pull; it is then decided unless it is exactly
// as the last pull read it (same LastModifiedDate, every value read equal
// to the snapshot: a re-read). It returns the decisions on fields whose
// values differ.
func (m *Model) Pull() []Decision {
	if !m.modified {
		return nil
	}
	m.modified = false
	differs := false
	for _, f := range m.fields {
		if s, ok := m.snapshot[f.CRMField]; f.Mode != prefs.DoNotSync && (!ok || !record.SameValue(s.v, m.crm[f.CRMField])) {
			differs = true
		}
	}
	if !m.lastModified.After(m.pulled) && !differs {
		return nil
	}
	var out []Decision
	for _, f := range m.fields {
		if f.Mode == prefs.DoNotSync {
			continue // not read
		}
		v := m.crm[f.CRMField]
		conv := m.conv[f.Name]
		if record.SameValue(conv.v, v) {
			continue
		}
		st := m.crmStamp(f.CRMField, v)
		d := Decision{Field: f.Name}
		switch f.Mode {
		case prefs.AlwaysPreferConversion:
			d.Verdict = Never
		case prefs.AlwaysPreferSalesforce:
			d.Act, d.Verdict = true, Always
		case prefs.PreferSalesforceUnlessEmpty:
			d.Act, d.Verdict = !record.Blank(v), NotBlank
			if !d.Act {
				d.Verdict = Blank
			}
		case prefs.TwoWay:
			switch st.compare(conv.at) {
			case 1:
				d.Verdict = ConversionNewer
			case 0:
				d.Act, d.Verdict = true, SameTime
			default:
				d.Act, d.Verdict = true, CRMNewer
			}
		}
		if d.Act {
			m.conv[f.Name] = convValue{v: v, at: st.at, second: !st.written}
		}
		out = append(out, d)
	}
	m.refresh(func(f Field) bool { return f.Mode != prefs.DoNotSync })
	m.pulled = m.lastModified
	return out
}
