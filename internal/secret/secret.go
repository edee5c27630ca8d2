// Package secret encrypts CRM credentials at rest with AES-256-GCM. Every
// ciphertext is bound to the row it belongs to through the GCM additional
// data, so a ciphertext copied into another row fails to decrypt.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the key length in bytes (AES-256).
const KeySize = 32

// ErrDecrypt is returned when a ciphertext does not open with the key and
// binding given: a wrong key, a tampered value or a value from another row.
var ErrDecrypt = errors.New("secret: cannot decrypt (wrong key, or value not from this row)")

// Box seals and opens values with one key.
type Box struct {
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("secret key: not valid base64")
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to binding (for example "crm_connections/42").
// The result is nonce || ciphertext.
func (b *Box) Seal(plaintext []byte, binding string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("secret: reading random nonce: %v", err)) // crypto/rand never fails on Linux
	}
	return b.aead.Seal(nonce, nonce, plaintext, []byte(binding))
}

// Open decrypts a value sealed with the same key and binding.
func (b *Box) Open(sealed []byte, binding string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrDecrypt
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(binding))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}
