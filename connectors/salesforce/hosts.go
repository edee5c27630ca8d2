package salesforce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/crmsync/crmsync/connectors/connector"
)

// ErrHostNotAllowed is the one refusal for a loginUrl, instance URL or
// address the connector will not reach. Its text is the same whatever the
// reason (not a Salesforce host, a private or loopback address, found
// before or after DNS resolution), so the error reveals nothing about the
// network behind crmsync: a workspace token cannot map internal services
// through connectCrm.
var ErrHostNotAllowed = errors.New("salesforce: host not allowed: loginUrl must be https://login.salesforce.com, https://test.salesforce.com or the org's My Domain (https://*.my.salesforce.com, https://*.force.com); the operator may allow other hosts (crmsync --allow-crm-host)")

// hostNotAllowed is ErrHostNotAllowed as a connector error (the configuration
// is invalid, not the CRM unavailable).
func hostNotAllowed() error {
	return &connector.Error{Kind: connector.KindInvalid, Message: ErrHostNotAllowed.Error(), Err: ErrHostNotAllowed}
}

// WithAllowedHosts lets the connector reach hosts besides Salesforce's own,
// each "host" (any port) or "host:port", over http or https and at any
// address, loopback and private ones included: a fake Salesforce in tests
// and demos, or a proxy the operator runs. Without it the connector reaches
// only Salesforce hosts, over https, at public addresses.
func WithAllowedHosts(hosts ...string) Option {
	return func(c *Connector) { c.hosts.allowed = append(c.hosts.allowed, hosts...) }
}

// hostPolicy decides which URLs and addresses the connector may reach.
type hostPolicy struct {
	allowed []string // operator-allowed "host" or "host:port"
}

// explicit reports whether the operator allowed host:port.
func (p hostPolicy) explicit(host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range p.allowed {
		a = strings.ToLower(a)
		if a == host || a == net.JoinHostPort(host, port) {
			return true
		}
	}
	return false
}

// checkURL refuses a base URL the connector may not reach: login says it
// is a loginUrl (Salesforce's login hosts and My Domains), otherwise an
// instance or identity URL (any Salesforce host). An operator-allowed host
// passes with http or https; anything else needs https on the default port,
// a Salesforce host name (not an address), and a public address once
// resolved (checked when dialling).
func (p hostPolicy) checkURL(raw string, login bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return hostNotAllowed()
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	if (u.Scheme == "https" || u.Scheme == "http") && p.explicit(host, port) {
		return nil
	}
	if u.Scheme != "https" || port != "443" || !salesforceHost(host, login) {
		return hostNotAllowed()
	}
	return nil
}

// salesforceHost reports whether host is one of Salesforce's: for a login,
// login.salesforce.com, test.salesforce.com, a My Domain
// (*.my.salesforce.com, which covers the sandbox, developer and scratch
// forms such as acme--dev.sandbox.my.salesforce.com) or *.force.com; for an
// instance, also any other *.salesforce.com host (na1.salesforce.com).
func salesforceHost(host string, login bool) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err != nil && !validHostName(host) {
		return false
	}
	switch {
	case host == "login.salesforce.com", host == "test.salesforce.com":
		return true
	case strings.HasSuffix(host, ".my.salesforce.com"), strings.HasSuffix(host, ".force.com"):
		return true
	case !login && strings.HasSuffix(host, ".salesforce.com"):
		return true
	}
	return false
}

// validHostName reports whether host is a DNS name of letters, digits,
// hyphens and dots (no address literal can be one).
func validHostName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// dialer returns a DialContext that connects to operator-allowed hosts as
// asked and to any other host only at a public address: the check runs on
// the address actually dialled, after DNS resolution, so a Salesforce-like
// name resolving to 169.254.169.254 or 10.0.0.1 is refused too.
func (p hostPolicy) dialer(base *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	guarded := *base
	guarded.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !publicAddr(ap.Addr()) {
			return ErrHostNotAllowed
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, ErrHostNotAllowed)
		}
		if p.explicit(host, port) {
			return base.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// nonPublic are the special-purpose ranges netip's predicates do not name
// (RFC 6890 and successors): shared address space, IETF protocol
// assignments, benchmarking, reserved, and the IPv6 translation and
// tunnelling prefixes that can embed a private IPv4 address.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
}

// publicAddr reports whether a is a global unicast address outside every
// private, loopback, link-local and special-purpose range.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
