package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// store is the JSON file that is the CRM: its API key, the next id to hand
// out, and the records of each object by id.
type store struct {
	APIKey  string                        `json:"apiKey"`
	NextID  int                           `json:"nextId"`
	Objects map[string]map[string]*record `json:"objects"`
}

// record is one stored record.
type record struct {
	Fields       map[string]any `json:"fields"`
	LastModified time.Time      `json:"lastModified"`
	ModifiedBy   string         `json:"modifiedBy"`
}

// Init creates an empty store at path whose API key is apiKey. It refuses
// to replace an existing file.
func Init(path, apiKey string) error {
	if apiKey == "" {
		return errors.New("init: the API key is empty")
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("init: %s already exists", path)
	}
	return save(path, &store{APIKey: apiKey, NextID: 1, Objects: map[string]map[string]*record{}})
}

// load reads the store at path.
func load(path string) (*store, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s store
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s is not a jsoncrm store: %w", path, err)
	}
	if s.Objects == nil {
		s.Objects = map[string]map[string]*record{}
	}
	return &s, nil
}

// save writes s to path atomically: to a temporary file in the same
// directory, synced, then renamed over path, so a crash leaves either the
// old store or the new one, never half of one.
func save(path string, s *store) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// newID hands out the next id of object, e.g. "person-7".
func (s *store) newID(object string) string {
	id := fmt.Sprintf("%s-%d", objectPrefix[object], s.NextID)
	s.NextID++
	return id
}
