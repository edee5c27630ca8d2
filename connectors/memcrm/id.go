package memcrm

import (
	"fmt"
	"strings"
)

// Key prefixes Salesforce uses for the objects memcrm models.
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
	// A Bulk API 2.0 ingest job (not an object: its ids never name records).
	"BulkJob": "750",
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns the 18-character id of the n-th record of object in an org
// whose instance part is pod (two characters): key prefix, pod, a base-62
// counter, and Salesforce's 3-character case-safety checksum.
func newID(object, pod string, n uint64) string {
	var counter [10]byte
	for i := len(counter) - 1; i >= 0; i-- {
		counter[i] = base62[n%62]
		n /= 62
	}
	id15 := keyPrefixes[object] + pod + string(counter[:])
	return id15 + checksum(id15)
}

// checksum computes the suffix that turns a 15-character case-sensitive id
// into its 18-character case-insensitive form.
func checksum(id15 string) string {
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

// validID reports whether id is a well-formed 18-character id (or a
// 15-character one) and returns its 18-character form.
func validID(id string) (string, bool) {
	if len(id) != 15 && len(id) != 18 {
		return "", false
	}
	for i := range len(id) {
		if !strings.ContainsRune(base62, rune(id[i])) {
			return "", false
		}
	}
	if len(id) == 15 {
		return id + checksum(id), true
	}
	if !strings.EqualFold(id[15:], checksum(id[:15])) {
		return "", false
	}
	return id[:15] + checksum(id[:15]), true
}

// objectOfID returns the object whose key prefix id carries.
func objectOfID(id string) (string, error) {
	if len(id) < 3 {
		return "", fmt.Errorf("id %q too short", id)
	}
	for object, prefix := range keyPrefixes {
		if id[:3] == prefix {
			return object, nil
		}
	}
	return "", fmt.Errorf("id %q has unknown key prefix %q", id, id[:3])
}
