package sffake

import (
	"strings"
)

// keyPrefixes are the 3-character key prefixes of the objects the fake
// models, as Salesforce assigns them.
var keyPrefixes = map[string]string{
	"Account":        "001",
	"Contact":        "003",
	"User":           "005",
	"Lead":           "00Q",
	"Task":           "00T",
	"Group":          "00G",
	"CampaignMember": "00v",
	"Organization":   "00D",
	"Campaign":       "701",
	"QueryLocator":   "01g",
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// makeID returns the 18-character id of the n-th record with key prefix
// prefix: prefix, a 2-character pod, a base-62 counter padded to 10
// characters, and the case-safety checksum.
func makeID(prefix, pod string, n uint64) string {
	var counter [10]byte
	for i := len(counter) - 1; i >= 0; i-- {
		counter[i] = base62[n%62]
		n /= 62
	}
	id15 := prefix + pod + string(counter[:])
	return id15 + Checksum(id15)
}

// Checksum computes the 3-character suffix that turns a 15-character
// case-sensitive Salesforce id into its 18-character case-insensitive form.
func Checksum(id15 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	var sum [3]byte
	for chunk := range 3 {
		bits := 0
		for i := range 5 {
			c := id15[chunk*5+i]
			if c >= 'A' && c <= 'Z' {
				bits |= 1 << i
			}
		}
		sum[chunk] = alphabet[bits]
	}
	return string(sum[:])
}

// NormalizeID returns the 18-character form of a 15- or 18-character id and
// whether id is well formed. An 18-character id is matched
// case-insensitively, as Salesforce does: its checksum restores the case of
// the first 15 characters.
func NormalizeID(id string) (string, bool) {
	if len(id) != 15 && len(id) != 18 {
		return "", false
	}
	for i := range len(id) {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return "", false
		}
	}
	if len(id) == 15 {
		return id + Checksum(id), true
	}
	// Restore the case of the first 15 characters from the checksum.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	b := []byte(id[:15])
	for chunk := range 3 {
		bits := strings.IndexByte(alphabet, upper(id[15+chunk]))
		if bits < 0 {
			return "", false
		}
		for i := range 5 {
			c := b[chunk*5+i]
			if bits&(1<<i) != 0 {
				b[chunk*5+i] = upper(c)
			} else if c >= 'A' && c <= 'Z' {
				b[chunk*5+i] = c + 'a' - 'A'
			}
		}
	}
	id15 := string(b)
	return id15 + Checksum(id15), true
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// objectOfID returns the object whose key prefix starts id, or "".
func objectOfID(id string) string {
	if len(id) < 3 {
		return ""
	}
	for obj, p := range keyPrefixes {
		if id[:3] == p {
			return obj
		}
	}
	return ""
}
