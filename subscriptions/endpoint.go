package subscriptions

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultEndpoints is the allow-list when none is configured: any https URL.
var DefaultEndpoints = []string{"https://*"}

// LoopbackEndpoints are the http URLs on this host; cmd/fhirserver adds them
// to the default allow-list when authorization is off (local development).
var LoopbackEndpoints = []string{"http://127.0.0.1", "http://localhost", "http://[::1]"}

// endpointRule is one allow-list entry: scheme://host[:port][/path].
// host "*" is any host and "*.example.org" any subdomain of example.org;
// without a port any port; a path is a prefix the endpoint's path must
// start with (at a segment boundary).
type endpointRule struct {
	scheme, host, port, path string
}

type endpointPolicy []endpointRule

// parseEndpoints reads an allow-list.
func parseEndpoints(list []string) (endpointPolicy, error) {
	var p endpointPolicy
	for _, raw := range list {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		scheme, rest, ok := strings.Cut(raw, "://")
		scheme = strings.ToLower(scheme)
		if !ok || (scheme != "https" && scheme != "http") {
			return nil, fmt.Errorf("subscriptions: endpoint allow-list entry %q: want https://host[:port][/path] or http://…", raw)
		}
		hostport, path, _ := strings.Cut(rest, "/")
		r := endpointRule{scheme: scheme, path: strings.TrimSuffix("/"+path, "/")}
		if strings.HasPrefix(hostport, "[") { // IPv6 literal
			end := strings.IndexByte(hostport, ']')
			if end < 0 {
				return nil, fmt.Errorf("subscriptions: endpoint allow-list entry %q: unclosed [", raw)
			}
			r.host = strings.ToLower(hostport[1:end])
			r.port = strings.TrimPrefix(hostport[end+1:], ":")
		} else {
			h, port, _ := strings.Cut(hostport, ":")
			r.host, r.port = strings.ToLower(h), port
		}
		if r.host == "" {
			return nil, fmt.Errorf("subscriptions: endpoint allow-list entry %q has no host (use * for any)", raw)
		}
		p = append(p, r)
	}
	return p, nil
}

// check says why endpoint may not be used (nil when it may).
func (p endpointPolicy) check(endpoint string) error {
	if endpoint == "" {
		return fmt.Errorf("channel.endpoint is missing")
	}
	u, err := url.Parse(endpoint)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("channel.endpoint %q is not an absolute http(s) URL", endpoint)
	}
	if u.User != nil {
		return fmt.Errorf("channel.endpoint %q carries credentials in the URL: send them in channel.header instead", redact(u))
	}
	scheme, host, port, path := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port(), u.EscapedPath()
	for _, r := range p {
		if r.scheme != scheme || (r.port != "" && r.port != port) {
			continue
		}
		switch {
		case r.host == "*":
		case strings.HasPrefix(r.host, "*."):
			if !strings.HasSuffix(host, r.host[1:]) {
				continue
			}
		case r.host != host:
			continue
		}
		if r.path != "" && path != r.path && !strings.HasPrefix(path, r.path+"/") {
			continue
		}
		return nil
	}
	return fmt.Errorf("channel.endpoint %q is not allowed by this server's endpoint allow-list", redact(u))
}

func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("xxx")
	}
	c.RawQuery = ""
	return c.String()
}
