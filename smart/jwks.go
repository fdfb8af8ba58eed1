package smart

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// jwksCache fetches JWK Sets by URL and keeps them for jwksTTL; a key id
// not in the cached set refetches it, at most once per jwksMissInterval.
type jwksCache struct {
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	set      jwk.Set
	fetched  time.Time
	lastMiss time.Time
}

const (
	jwksTTL          = 5 * time.Minute
	jwksMissInterval = 10 * time.Second
	maxJWKSBytes     = 1 << 20
)

func newJWKSCache(client *http.Client, now func() time.Time) *jwksCache {
	return &jwksCache{client: client, now: now, entries: map[string]*jwksEntry{}}
}

// keys returns the set at url and whether it holds kid ("" matches any
// set), fetching it when it is not cached, is stale, or misses kid.
func (c *jwksCache) keys(ctx context.Context, url, kid string) (jwk.Set, error) {
	c.mu.Lock()
	e := c.entries[url]
	now := c.now()
	fetch := e == nil || now.Sub(e.fetched) > jwksTTL
	if !fetch && kid != "" {
		if _, ok := e.set.LookupKeyID(kid); !ok && now.Sub(e.lastMiss) > jwksMissInterval {
			e.lastMiss = now
			fetch = true
		}
	}
	c.mu.Unlock()
	if !fetch {
		return e.set, nil
	}
	set, err := c.fetch(ctx, url)
	if err != nil {
		if e != nil {
			return e.set, nil // keep serving the last good set
		}
		return nil, err
	}
	c.mu.Lock()
	ne := &jwksEntry{set: set, fetched: now}
	if e != nil {
		ne.lastMiss = e.lastMiss
	}
	c.entries[url] = ne
	c.mu.Unlock()
	return set, nil
}

func (c *jwksCache) fetch(ctx context.Context, url string) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("smart: fetch JWKS %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("smart: fetch JWKS %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("smart: fetch JWKS %s: status %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("smart: fetch JWKS %s: %w", url, err)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("smart: fetch JWKS %s: %w", url, err)
	}
	return set, nil
}
