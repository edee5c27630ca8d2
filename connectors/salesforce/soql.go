package salesforce

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// identRE is what an object or field name must look like before it is
// written into SOQL or a URL path (API names: letters, digits, single
// underscores, a custom suffix such as __c). Names are also checked against
// the object's describe.
var identRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

func validIdent(s string) bool { return identRE.MatchString(s) }

// idRE matches a 15-character (case-sensitive) or 18-character record id.
var idRE = regexp.MustCompile(`^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$`)

// ValidID reports whether s has the shape of a Salesforce record id: 15
// alphanumeric characters (case-sensitive), or 18 whose last three are
// checksum characters (A-Z, 0-5, any case).
func ValidID(s string) bool {
	if !idRE.MatchString(s) {
		return false
	}
	if len(s) == 18 {
		for i := 15; i < 18; i++ {
			if strings.IndexByte(idAlpha, upper(s[i])) < 0 {
				return false
			}
		}
	}
	return true
}

// ID18 returns the canonical 18-character form of a valid id: 15-character
// ids get their checksum appended; 18-character ids get the case of their
// first 15 characters restored from the checksum (they may arrive in any
// case).
func ID18(s string) string {
	if len(s) == 15 {
		return s + idChecksum(s)
	}
	if s[15:] == idChecksum(s[:15]) {
		return s
	}
	b := []byte(s)
	for blk := range 3 {
		b[15+blk] = upper(b[15+blk])
		n := strings.IndexByte(idAlpha, b[15+blk])
		for i := range 5 {
			c := b[blk*5+i]
			if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
				if n>>i&1 == 1 {
					b[blk*5+i] = upper(c)
				} else {
					b[blk*5+i] = c | 0x20
				}
			}
		}
	}
	return string(b)
}

const idAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 0x20
	}
	return c
}

func idChecksum(id15 string) string {
	out := make([]byte, 3)
	for b := range 3 {
		n := 0
		for i := range 5 {
			if c := id15[b*5+i]; c >= 'A' && c <= 'Z' {
				n |= 1 << i
			}
		}
		out[b] = idAlpha[n]
	}
	return string(out)
}

// QuoteString renders s as a SOQL string literal: single quotes around it,
// backslash and quote characters escaped, and control characters written as
// escape sequences, so the literal always ends where it should. It is for
// comparisons (=, IN); LIKE patterns would also need % and _ escaped, and
// crmsync never builds LIKE filters.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// soqlTime renders t as an unquoted SOQL datetime literal (UTC, seconds).
func soqlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// maxLiteral is Salesforce's cap on one string literal in a WHERE clause.
const maxLiteral = 4000

// literal renders a match value for a field of the given describe type, or
// reports false when the value cannot equal any value of the field (wrong
// shape, longer than the field), in which case it is left out of the query:
// a value is never allowed to widen a query.
func literal(f *sfField, v string) (string, bool) {
	switch f.Type {
	case "id", "reference":
		if !ValidID(v) {
			return "", false
		}
		return "'" + ID18(v) + "'", true
	case "boolean":
		if v != "true" && v != "false" {
			return "", false
		}
		return v, true
	case "int", "double", "currency", "percent":
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n != n || n > 1e18 || n < -1e18 {
			return "", false
		}
		return strconv.FormatFloat(n, 'f', -1, 64), true
	case "date":
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return "", false
		}
		return d.Format(time.DateOnly), true
	case "datetime":
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return "", false
		}
		return soqlTime(t), true
	}
	n := utf8.RuneCountInString(v)
	if n > maxLiteral || (f.Length > 0 && n > f.Length) {
		return "", false
	}
	return QuoteString(v), true
}

// maxQueryBytes bounds the URL-encoded q parameter of one query, well under
// the ~16 KB request-URI limit (431/414 beyond it).
const maxQueryBytes = 12_000

// chunkIn builds queries prefix + "a,b,c" + suffix whose URL-encoded form
// stays within max bytes each. A literal too long for any query alone is
// dropped (it was already bounded by the field length, so it matches nothing).
func chunkIn(prefix, suffix string, literals []string, max int) []string {
	base := len(url.QueryEscape(prefix)) + len(url.QueryEscape(suffix))
	var out []string
	var cur []string
	size := base
	flush := func() {
		if len(cur) > 0 {
			out = append(out, prefix+strings.Join(cur, ",")+suffix)
			cur, size = nil, base
		}
	}
	for _, l := range literals {
		n := len(url.QueryEscape(l)) + len(url.QueryEscape(","))
		if base+n > max {
			continue
		}
		if size+n > max {
			flush()
		}
		cur = append(cur, l)
		size += n
	}
	flush()
	return out
}
