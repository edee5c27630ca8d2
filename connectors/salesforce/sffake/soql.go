package sffake

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file parses and evaluates the SOQL subset the fake supports:
//
//	SELECT f1, f2, Rel.f | COUNT() FROM T
//	[WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]
//
// where cond combines, with AND / OR / NOT and parentheses (AND and OR may
// not be mixed at one level without parentheses, as in Salesforce),
// comparisons f op literal (= != <> < <= > >=), f [NOT] IN (literals) and
// f LIKE 'pattern'. Literals are single-quoted strings with the escapes of
// the SOQL reference, numbers, true/false, null, datetimes
// (2024-01-02T03:04:05Z, offsets, optional milliseconds) and dates.

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDateTime
	tDate
	tOp
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string   // identifier, operator, or raw text
	str  string   // decoded string literal
	like []likeEl // string literal as a LIKE pattern
	pos  int      // byte offset in the statement
}

// likeEl is one element of a LIKE pattern: a literal rune or a wildcard.
type likeEl struct {
	r        rune
	wildcard bool // r is '%' or '_' used as a wildcard
}

type soqlError struct {
	code string
	msg  string
}

func (e *soqlError) Error() string { return e.code + ": " + e.msg }

// caret formats a message the way Salesforce points at a query position.
func caret(q string, pos int, msg string) string {
	line := q
	if len(line) > 200 {
		line = line[:200]
	}
	col := pos
	if col > len(line) {
		col = len(line)
	}
	return fmt.Sprintf("\n%s\n%s^\nERROR at Row:1:Column:%d\n%s", line, strings.Repeat(" ", utf8.RuneCountInString(line[:col])), pos+1, msg)
}

func malformed(q string, pos int, msg string) *soqlError {
	return &soqlError{code: "MALFORMED_QUERY", msg: caret(q, pos, msg)}
}

const maxSOQLLength = 100000
const maxLiteralLength = 4000

func lex(q string) ([]token, *soqlError) {
	var toks []token
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{kind: tLParen, text: "(", pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, text: ")", pos: i})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, text: ",", pos: i})
			i++
		case c == '=':
			toks = append(toks, token{kind: tOp, text: "=", pos: i})
			i++
		case c == '!' || c == '<' || c == '>':
			op := string(c)
			if i+1 < len(q) && (q[i+1] == '=' || c == '<' && q[i+1] == '>') {
				op += string(q[i+1])
			}
			if op == "!" {
				return nil, malformed(q, i, "unexpected token: '!'")
			}
			n := len(op)
			if op == "<>" {
				op = "!="
			}
			toks = append(toks, token{kind: tOp, text: op, pos: i})
			i += n
		case c == '\'':
			t, n, err := lexString(q, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = n
		case c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.':
			j := i + 1
			for j < len(q) && strings.IndexByte("0123456789-:+.TZ", q[j]) >= 0 {
				j++
			}
			text := q[i:j]
			switch {
			case isDate(text):
				toks = append(toks, token{kind: tDate, text: text, pos: i})
			case len(text) > 10 && isDate(text[:10]) && text[10] == 'T':
				if _, ok := parseDateTime(text); !ok {
					return nil, malformed(q, i, "line 1:"+itoa(i)+" no viable alternative at character '"+text+"'")
				}
				toks = append(toks, token{kind: tDateTime, text: text, pos: i})
			default:
				if _, err := strconv.ParseFloat(text, 64); err != nil {
					return nil, malformed(q, i, "unexpected token: '"+text+"'")
				}
				toks = append(toks, token{kind: tNumber, text: text, pos: i})
			}
			i = j
		case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			j := i + 1
			for j < len(q) && (q[j] == '_' || q[j] == '.' || q[j] >= '0' && q[j] <= '9' || q[j] >= 'A' && q[j] <= 'Z' || q[j] >= 'a' && q[j] <= 'z') {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: q[i:j], pos: i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(q[i:])
			return nil, malformed(q, i, fmt.Sprintf("line 1:%d no viable alternative at character '%c'", i, r))
		}
	}
	return append(toks, token{kind: tEOF, pos: len(q)}), nil
}

func isDate(s string) bool {
	if len(s) != 10 {
		return false
	}
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

// lexString decodes a quoted string literal starting at q[start] == '\”.
// Backslash escapes follow the SOQL reference; any other escape is an error.
func lexString(q string, start int) (token, int, *soqlError) {
	var b strings.Builder
	var like []likeEl
	i := start + 1
	for {
		if i >= len(q) {
			return token{}, 0, malformed(q, start, "line 1:"+itoa(start)+" mismatched character '<EOF>' expecting '''")
		}
		r, size := utf8.DecodeRuneInString(q[i:])
		switch r {
		case '\'':
			s := b.String()
			if utf8.RuneCountInString(s) > maxLiteralLength {
				return token{}, 0, malformed(q, start, "String literal exceeds the maximum length of 4000 characters")
			}
			return token{kind: tString, text: q[start : i+1], str: s, like: like, pos: start}, i + 1, nil
		case '\\':
			if i+1 >= len(q) {
				return token{}, 0, malformed(q, i, "line 1:"+itoa(i)+" mismatched character '<EOF>' expecting set null")
			}
			e := q[i+1]
			var out rune
			wild := false
			switch e {
			case 'n':
				out = '\n'
			case 'r':
				out = '\r'
			case 't':
				out = '\t'
			case 'b':
				out = '\b'
			case 'f':
				out = '\f'
			case '"', '\'', '\\':
				out = rune(e)
			case '%', '_':
				out = rune(e) // an escaped LIKE wildcard matches itself
			case 'u':
				if i+6 > len(q) {
					return token{}, 0, malformed(q, i, "Invalid unicode escape sequence")
				}
				n, err := strconv.ParseUint(q[i+2:i+6], 16, 32)
				if err != nil {
					return token{}, 0, malformed(q, i, "Invalid unicode escape sequence")
				}
				out = rune(n)
				i += 4
			default:
				return token{}, 0, malformed(q, i, "Invalid string literal '"+q[start:min(len(q), i+2)]+"'. Illegal character sequence '\\"+string(e)+"' in string literal.")
			}
			b.WriteRune(out)
			like = append(like, likeEl{r: out, wildcard: wild})
			i += 2
		default:
			b.WriteRune(r)
			like = append(like, likeEl{r: r, wildcard: r == '%' || r == '_'})
			i += size
		}
	}
}

// soqlQuery is a parsed statement.
type soqlQuery struct {
	text    string
	obj     *sobject
	count   bool
	fields  []fieldPath
	where   expr
	orderBy []orderKey
	limit   int // -1: none
	offset  int
}

// fieldPath is a field of the queried object, or one hop through a
// relationship (Owner.Name).
type fieldPath struct {
	rel   *Field // the reference field for Rel.X, nil for a plain field
	field *Field // the field of the object (plain) or the target name (Rel.X)
	name  string // the name as the target's field (for Rel.X)
}

type orderKey struct {
	path      fieldPath
	desc      bool
	nullsLast bool
}

type expr interface {
	eval(st *store, r *record) bool
}

type andExpr []expr
type orExpr []expr
type notExpr struct{ e expr }

func (a andExpr) eval(st *store, r *record) bool {
	for _, e := range a {
		if !e.eval(st, r) {
			return false
		}
	}
	return true
}

func (o orExpr) eval(st *store, r *record) bool {
	for _, e := range o {
		if e.eval(st, r) {
			return true
		}
	}
	return false
}

func (n notExpr) eval(st *store, r *record) bool { return !n.e.eval(st, r) }

// cmpExpr is f op value, f [NOT] IN (values) or f LIKE pattern.
type cmpExpr struct {
	path   fieldPath
	op     string // = != < <= > >= IN NOTIN LIKE
	values []any  // converted literals (nil for null)
	like   []likeEl
	// in holds the lower-cased values of an IN or NOT IN list of strings
	// only (nil otherwise), so a long list costs one lookup per record.
	in map[string]bool
}

type parser struct {
	q    string
	toks []token
	i    int
	st   *store
	obj  *sobject
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(t token, kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) unexpected(t token) *soqlError {
	if t.kind == tEOF {
		return malformed(p.q, t.pos, "unexpected token: '<EOF>'")
	}
	return malformed(p.q, t.pos, "unexpected token: '"+t.text+"'")
}

func (p *parser) expectKeyword(kw string) *soqlError {
	t := p.next()
	if !p.isKeyword(t, kw) {
		return p.unexpected(t)
	}
	return nil
}

// parseSOQL parses q against the store's schema.
func parseSOQL(st *store, q string) (*soqlQuery, *soqlError) {
	if len(q) > maxSOQLLength {
		return nil, &soqlError{code: "MALFORMED_QUERY", msg: "SOQL statements cannot be longer than 100,000 characters."}
	}
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{q: q, toks: toks, st: st}
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	// Find FROM first: fields are resolved against the object.
	var selectToks []token
	for t := p.next(); !p.isKeyword(t, "FROM"); t = p.next() {
		if t.kind == tEOF {
			return nil, p.unexpected(t)
		}
		selectToks = append(selectToks, t)
	}
	objTok := p.next()
	if objTok.kind != tIdent {
		return nil, p.unexpected(objTok)
	}
	p.obj = st.object(objTok.text)
	if p.obj == nil {
		return nil, &soqlError{code: "INVALID_TYPE", msg: caret(q, objTok.pos, "sObject type '"+objTok.text+"' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.")}
	}
	sq := &soqlQuery{text: q, obj: p.obj, limit: -1}
	if err := p.parseSelect(sq, selectToks); err != nil {
		return nil, err
	}
	if p.isKeyword(p.peek(), "WHERE") {
		p.next()
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		sq.where = e
	}
	if p.isKeyword(p.peek(), "ORDER") {
		p.next()
		if err := p.expectKeyword("BY"); err != nil {
			return nil, err
		}
		for {
			key, err := p.parseOrderKey()
			if err != nil {
				return nil, err
			}
			sq.orderBy = append(sq.orderBy, key)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	for _, kw := range []string{"LIMIT", "OFFSET"} {
		if !p.isKeyword(p.peek(), kw) {
			continue
		}
		p.next()
		t := p.next()
		n, convErr := strconv.Atoi(t.text)
		if t.kind != tNumber || convErr != nil || n < 0 {
			return nil, p.unexpected(t)
		}
		if kw == "LIMIT" {
			sq.limit = n
		} else {
			if n > 2000 {
				return nil, &soqlError{code: "NUMBER_OUTSIDE_VALID_RANGE", msg: "Maximum SOQL offset allowed is 2000"}
			}
			sq.offset = n
		}
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t)
	}
	return sq, nil
}

func (p *parser) parseSelect(sq *soqlQuery, toks []token) *soqlError {
	if len(toks) == 3 && p.isKeyword(toks[0], "COUNT") && toks[1].kind == tLParen && toks[2].kind == tRParen {
		sq.count = true
		return nil
	}
	seen := map[string]bool{}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tIdent {
			return p.unexpected(t)
		}
		fp, err := p.resolve(t)
		if err != nil {
			return err
		}
		key := strings.ToLower(t.text)
		if seen[key] {
			return malformed(p.q, t.pos, "duplicate field selected: "+t.text)
		}
		seen[key] = true
		sq.fields = append(sq.fields, fp)
		if i+1 < len(toks) {
			i++
			if toks[i].kind != tComma || i+1 == len(toks) {
				return p.unexpected(toks[i])
			}
		}
	}
	if len(sq.fields) == 0 {
		return malformed(p.q, 7, "unexpected token: 'FROM'")
	}
	return nil
}

// resolve turns an identifier into a field path of the queried object.
func (p *parser) resolve(t token) (fieldPath, *soqlError) {
	noSuch := func(name string) *soqlError {
		return &soqlError{code: "INVALID_FIELD", msg: caret(p.q, t.pos, "No such column '"+name+"' on entity '"+p.obj.Name+"'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.")}
	}
	name := t.text
	if strings.HasPrefix(strings.ToLower(name), strings.ToLower(p.obj.Name)+".") {
		name = name[len(p.obj.Name)+1:] // SELECT Lead.Email FROM Lead
	}
	rel, field, dotted := strings.Cut(name, ".")
	if !dotted {
		f := p.obj.field(name)
		if f == nil {
			return fieldPath{}, noSuch(name)
		}
		return fieldPath{field: f}, nil
	}
	var ref *Field
	for _, f := range p.obj.Fields {
		if f.RelationshipName != "" && strings.EqualFold(f.RelationshipName, rel) {
			ref = f
		}
	}
	if ref == nil || strings.Contains(field, ".") {
		return fieldPath{}, &soqlError{code: "INVALID_FIELD", msg: caret(p.q, t.pos, "Didn't understand relationship '"+rel+"' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.")}
	}
	for _, target := range ref.ReferenceTo {
		if o := p.st.objects[target]; o != nil {
			if f := o.field(field); f != nil {
				return fieldPath{rel: ref, field: f, name: f.Name}, nil
			}
		}
	}
	return fieldPath{}, &soqlError{code: "INVALID_FIELD", msg: caret(p.q, t.pos, "No such column '"+field+"' on entity '"+ref.ReferenceTo[0]+"'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.")}
}

func (p *parser) parseOrderKey() (orderKey, *soqlError) {
	t := p.next()
	if t.kind != tIdent {
		return orderKey{}, p.unexpected(t)
	}
	fp, err := p.resolve(t)
	if err != nil {
		return orderKey{}, err
	}
	key := orderKey{path: fp}
	if p.isKeyword(p.peek(), "ASC") {
		p.next()
	} else if p.isKeyword(p.peek(), "DESC") {
		p.next()
		key.desc, key.nullsLast = true, true
	}
	if p.isKeyword(p.peek(), "NULLS") {
		p.next()
		t := p.next()
		switch {
		case p.isKeyword(t, "FIRST"):
			key.nullsLast = false
		case p.isKeyword(t, "LAST"):
			key.nullsLast = true
		default:
			return orderKey{}, p.unexpected(t)
		}
	}
	return key, nil
}

// parseOr parses a condition list at one parenthesis level. Salesforce
// refuses to mix AND and OR at one level.
func (p *parser) parseOr() (expr, *soqlError) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	terms := []expr{first}
	conj := ""
	for {
		t := p.peek()
		var kw string
		switch {
		case p.isKeyword(t, "AND"):
			kw = "AND"
		case p.isKeyword(t, "OR"):
			kw = "OR"
		default:
			if len(terms) == 1 {
				return first, nil
			}
			if conj == "AND" {
				return andExpr(terms), nil
			}
			return orExpr(terms), nil
		}
		if conj != "" && conj != kw {
			return nil, p.unexpected(t)
		}
		conj = kw
		p.next()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
	}
}

func (p *parser) parseUnary() (expr, *soqlError) {
	t := p.peek()
	switch {
	case p.isKeyword(t, "NOT"):
		p.next()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	case t.kind == tLParen:
		p.next()
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if r := p.next(); r.kind != tRParen {
			return nil, p.unexpected(r)
		}
		return e, nil
	}
	return p.parseComparison()
}

func (p *parser) parseComparison() (expr, *soqlError) {
	ft := p.next()
	if ft.kind != tIdent {
		return nil, p.unexpected(ft)
	}
	fp, err := p.resolve(ft)
	if err != nil {
		return nil, err
	}
	c := &cmpExpr{path: fp}
	t := p.next()
	switch {
	case t.kind == tOp:
		c.op = t.text
		v, err := p.literal(fp, p.next())
		if err != nil {
			return nil, err
		}
		c.values = []any{v}
	case p.isKeyword(t, "LIKE"):
		c.op = "LIKE"
		lt := p.next()
		if lt.kind != tString {
			return nil, p.unexpected(lt)
		}
		if !fp.field.isText() && !fp.field.isID() {
			return nil, &soqlError{code: "INVALID_FIELD", msg: caret(p.q, ft.pos, "invalid operator on "+fp.field.Type+" field: LIKE")}
		}
		c.like = lt.like
	case p.isKeyword(t, "IN") || p.isKeyword(t, "NOT"):
		c.op = "IN"
		if p.isKeyword(t, "NOT") {
			if err := p.expectKeyword("IN"); err != nil {
				return nil, err
			}
			c.op = "NOTIN"
		}
		if lp := p.next(); lp.kind != tLParen {
			return nil, p.unexpected(lp)
		}
		for {
			v, err := p.literal(fp, p.next())
			if err != nil {
				return nil, err
			}
			c.values = append(c.values, v)
			sep := p.next()
			if sep.kind == tRParen {
				break
			}
			if sep.kind != tComma {
				return nil, p.unexpected(sep)
			}
		}
		c.in = stringSet(c.values)
	default:
		return nil, p.unexpected(t)
	}
	return c, nil
}

// stringSet is the lower-cased set of values when every one is a string
// (compare's notion of equal strings), else nil.
func stringSet(values []any) map[string]bool {
	set := make(map[string]bool, len(values))
	for _, v := range values {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		set[strings.ToLower(s)] = true
	}
	return set
}

// literal converts a literal token to the stored form of fp's field and
// refuses literals of the wrong type, as Salesforce does.
func (p *parser) literal(fp fieldPath, t token) (any, *soqlError) {
	f := fp.field
	if p.isKeyword(t, "null") {
		return nil, nil
	}
	wrong := func(typ, quoted string) (any, *soqlError) {
		return nil, &soqlError{code: "INVALID_FIELD", msg: caret(p.q, t.pos, "value of filter criterion for field '"+f.Name+"' must be of type "+typ+" and "+quoted)}
	}
	switch t.kind {
	case tString, tNumber, tDateTime, tDate, tIdent:
	default:
		return nil, p.unexpected(t)
	}
	switch f.Type {
	case "datetime":
		if t.kind != tDateTime {
			return wrong("dateTime", "should not be enclosed in quotes")
		}
		tm, _ := parseDateTime(t.text)
		return tm.Truncate(time.Second), nil
	case "date":
		if t.kind != tDate {
			return wrong("date", "should not be enclosed in quotes")
		}
		return t.text, nil
	case "boolean":
		if t.kind != tIdent || !(strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false")) {
			return wrong("boolean", "should not be enclosed in quotes")
		}
		return strings.EqualFold(t.text, "true"), nil
	case "int", "double", "currency", "percent":
		if t.kind != tNumber {
			return wrong("number", "should not be enclosed in quotes")
		}
		n, _ := strconv.ParseFloat(t.text, 64)
		return n, nil
	}
	if t.kind != tString {
		if t.kind == tIdent {
			return nil, p.unexpected(t)
		}
		return wrong("string", "should be enclosed in quotes")
	}
	if f.isID() && t.str != "" {
		id, ok := NormalizeID(t.str)
		if !ok {
			return nil, &soqlError{code: "INVALID_QUERY_FILTER_OPERATOR", msg: caret(p.q, t.pos, "invalid ID field: "+t.str)}
		}
		return id, nil
	}
	return t.str, nil
}

// value returns the value of a field path on r.
func (fp fieldPath) value(st *store, r *record) any {
	if fp.rel == nil {
		return r.f[fp.field.Name]
	}
	target := st.get(r.str(fp.rel.Name))
	if target == nil {
		return nil
	}
	f := target.obj.field(fp.name)
	if f == nil {
		return nil
	}
	return target.f[f.Name]
}

func (c *cmpExpr) eval(st *store, r *record) bool {
	v := c.path.value(st, r)
	switch c.op {
	case "LIKE":
		s, ok := v.(string)
		return ok && likeMatch([]rune(strings.ToLower(s)), lowerLike(c.like))
	case "IN", "NOTIN":
		if s, ok := v.(string); ok && c.in != nil {
			return c.in[strings.ToLower(s)] == (c.op == "IN")
		}
		if v == nil && c.in != nil {
			return c.op == "NOTIN" // no string equals null
		}
	}
	switch c.op {
	case "IN":
		for _, x := range c.values {
			if compare(v, x) == 0 {
				return true
			}
		}
		return false
	case "NOTIN":
		for _, x := range c.values {
			if compare(v, x) == 0 {
				return false
			}
		}
		return true
	}
	want := c.values[0]
	cmp := compare(v, want)
	switch c.op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	}
	if v == nil || want == nil {
		return false
	}
	switch c.op {
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

// compare orders two stored values of one field; nil sorts first and
// equals only nil. Strings compare case-insensitively, as SOQL does.
func compare(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	case float64:
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case time.Time:
		y, _ := b.(time.Time)
		return x.Truncate(time.Second).Compare(y.Truncate(time.Second))
	}
	return 0
}

func lowerLike(p []likeEl) []likeEl {
	out := make([]likeEl, len(p))
	for i, e := range p {
		out[i] = likeEl{r: []rune(strings.ToLower(string(e.r)))[0], wildcard: e.wildcard}
	}
	return out
}

// likeMatch matches s against a LIKE pattern (% any run, _ one rune) in
// O(len(s)·len(p)).
func likeMatch(s []rune, p []likeEl) bool {
	// cur[j]: the first i runes of s match the first j pattern elements.
	cur := make([]bool, len(p)+1)
	cur[0] = true
	for j := 1; j <= len(p); j++ {
		cur[j] = cur[j-1] && p[j-1].wildcard && p[j-1].r == '%'
	}
	next := make([]bool, len(p)+1)
	for i := 1; i <= len(s); i++ {
		next[0] = false
		for j := 1; j <= len(p); j++ {
			e := p[j-1]
			switch {
			case e.wildcard && e.r == '%':
				next[j] = next[j-1] || cur[j]
			case e.wildcard && e.r == '_' || e.r == s[i-1]:
				next[j] = cur[j-1]
			default:
				next[j] = false
			}
		}
		cur, next = next, cur
	}
	return cur[len(p)]
}
