package salesforce

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// lexInList reads the IN list at the end of a query "... IN (lit,lit,...)"
// the way Salesforce's SOQL lexer reads string literals (§3.5: backslash
// escapes \n \r \t \b \f \" \' \\ \uXXXX, anything else is an error), and
// fails unless the list is followed by ")" and nothing else.
func lexInList(t testing.TB, q, prefix string) []string {
	t.Helper()
	rest, ok := strings.CutPrefix(q, prefix)
	require.True(t, ok, "query keeps its prefix: %q", q)
	var vals []string
	for {
		require.True(t, strings.HasPrefix(rest, "'"), "a literal starts with a quote: %q", rest)
		var b strings.Builder
		i := 1
		for {
			require.Less(t, i, len(rest), "unterminated literal")
			c := rest[i]
			if c == '\'' {
				i++
				break
			}
			if c != '\\' {
				b.WriteByte(c)
				i++
				continue
			}
			require.Less(t, i+1, len(rest), "dangling backslash")
			switch e := rest[i+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case '"', '\'', '\\':
				b.WriteByte(e)
			case 'u':
				require.LessOrEqual(t, i+6, len(rest), "short \\u escape")
				n, err := strconv.ParseUint(rest[i+2:i+6], 16, 32)
				require.NoError(t, err, "bad \\u escape")
				b.WriteRune(rune(n))
				i += 4
			default:
				t.Fatalf("invalid escape \\%c", e)
			}
			i += 2
		}
		vals = append(vals, b.String())
		rest = rest[i:]
		if rest == ")" {
			return vals
		}
		require.True(t, strings.HasPrefix(rest, ","), "literals are separated by commas, then ')': %q", rest)
		rest = rest[1:]
	}
}

var emailField = &sfField{Name: "Email", Type: "email", Length: 80}

const matchPrefix = "SELECT Id FROM Contact WHERE Email IN ("

func TestLiteralNeverWidensAQuery(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a'", 5000)
	values := []string{
		"o'brien@example.com", `back\slash@example.com`, `\'`, `\\'`, "100%@x.io", "a_b@x.io",
		"' OR Id != null", "x') OR (Id != null", "tab\there", "new\nline", "nul\x00byte", `quote"d`,
		"ünïcødé@example.com", "\u2028sep", long,
	}
	var lits []string
	for _, v := range values {
		if l, ok := literal(emailField, v); ok {
			lits = append(lits, l)
		}
	}
	queries := chunkIn(matchPrefix, ")", lits, maxQueryBytes)
	var got []string
	for _, q := range queries {
		require.LessOrEqual(t, len(url.QueryEscape(q)), maxQueryBytes)
		got = append(got, lexInList(t, q, matchPrefix)...)
	}
	// Every value but the one longer than the field reaches the query, as
	// exactly itself; the long one (it cannot equal an 80-character email)
	// is left out rather than truncated.
	require.Equal(t, values[:len(values)-1], got)
	require.NotContains(t, strings.Join(queries, ""), "a'a'a'a'")

	// Without a field length, 10,000 characters exceed the 4,000-character
	// literal cap and are left out as well.
	_, ok := literal(&sfField{Name: "Description", Type: "textarea"}, strings.Repeat("x", 10_000))
	require.False(t, ok)
}

func TestLiteralTypes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		typ, in, want string
		ok            bool
	}{
		"id 15 to 18":      {"id", "001D000000IRFma", "'001D000000IRFmaIAH'", true},
		"bad id":           {"reference", "001' OR Id != null", "", false},
		"bad checksum":     {"id", "001D000000IRFma999", "", false},
		"18 any case":      {"reference", "001d000000irfmaiah", "'001D000000IRFmaIAH'", true},
		"bool":             {"boolean", "true", "true", true},
		"bool injection":   {"boolean", "true OR Id != null", "", false},
		"number":           {"int", "42", "42", true},
		"number injection": {"double", "1 OR 1=1", "", false},
		"date":             {"date", "2024-01-02", "2024-01-02", true},
		"datetime":         {"datetime", "2024-01-02T03:04:05+01:00", "2024-01-02T02:04:05Z", true},
		"string":           {"string", "it's", `'it\'s'`, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := literal(&sfField{Name: "F", Type: tt.typ}, tt.in)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestChunkInKeepsURLsShort(t *testing.T) {
	t.Parallel()
	var lits []string
	for i := range 3000 {
		lits = append(lits, QuoteString(fmt.Sprintf("person.%04d+tag@some-long-domain.example.com", i)))
	}
	queries := chunkIn(matchPrefix, ")", lits, maxQueryBytes)
	require.Greater(t, len(queries), 1)
	var n int
	for _, q := range queries {
		require.LessOrEqual(t, len(url.QueryEscape(q)), maxQueryBytes)
		n += len(lexInList(t, q, matchPrefix))
	}
	require.Equal(t, len(lits), n, "every value in exactly one query")
}

func FuzzSOQLString(f *testing.F) {
	for _, s := range []string{"", "plain@example.com", "' OR Id != null", `\`, `\'`, "%_", "\n\r\t\b\f", "\x00\x1f\x7f", "é'\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, ok := literal(&sfField{Name: "Email", Type: "string"}, s)
		if !ok {
			require.Greater(t, len([]rune(s)), maxLiteral, "only over-long values are left out")
			return
		}
		q := matchPrefix + l + ")"
		got := lexInList(t, q, matchPrefix)
		require.Equal(t, []string{string([]rune(s))}, got, "the literal is the value and only the value")
	})
}

func TestIDs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"012000000000000": "012000000000000AAA",
		"AAAAAAAAAAAAAAA": "AAAAAAAAAAAAAAA555",
		"a0Ab00000FooBaR": "a0Ab00000FooBaREQU",
		"001D000000IRFma": "001D000000IRFmaIAH",
	} {
		require.Equal(t, want, ID18(in))
		require.True(t, ValidID(in))
		require.True(t, ValidID(want))
		require.True(t, ValidID(strings.ToLower(want)), "18-character ids are case-insensitive")
		require.Equal(t, want, ID18(strings.ToLower(want)), "case restored from the checksum")
	}
	for _, bad := range []string{"", "001", "001D000000IRFmaIA9", "001D000000IRFm'", "001D000000IRFmaIAHX", "00Q5g00000AAAAA-EA1"} {
		require.False(t, ValidID(bad), bad)
	}
}
