// Package outbound is the queue of changes waiting to be written to the CRM:
// items in total order, claimed per workspace, coalesced per record, kept
// with backoff on retryable failures and parked on permanent ones.
package outbound
