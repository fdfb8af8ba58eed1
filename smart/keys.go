package smart

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// signingAlg is the algorithm of the server's keys: access and id tokens
// are ES256.
const signingAlg = jwa.ES256

// NewSigningKey makes a new ES256 key, its kid the JWK thumbprint.
func NewSigningKey(now time.Time) (SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("smart: new signing key: %w", err)
	}
	k, err := jwk.FromRaw(priv)
	if err != nil {
		return SigningKey{}, fmt.Errorf("smart: new signing key: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return SigningKey{}, fmt.Errorf("smart: new signing key: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, signingAlg)
	_ = k.Set(jwk.KeyUsageKey, "sig")
	b, err := json.Marshal(k)
	if err != nil {
		return SigningKey{}, fmt.Errorf("smart: new signing key: %w", err)
	}
	return SigningKey{ID: kid, JWK: b, Created: now.UTC()}, nil
}

// RotateKey makes a new current signing key and retires the others. A
// retired key stays in the JWKS and keeps verifying until the longest
// token lifetime has passed; servers running on the store pick the new
// key up within KeyReload.
func RotateKey(ctx context.Context, st Store, now time.Time) (SigningKey, error) {
	keys, err := st.Keys(ctx)
	if err != nil {
		return SigningKey{}, err
	}
	k, err := NewSigningKey(now)
	if err != nil {
		return SigningKey{}, err
	}
	if err := st.PutKey(ctx, k); err != nil {
		return SigningKey{}, err
	}
	for _, old := range keys {
		if old.Retired.IsZero() {
			old.Retired = now.UTC()
			if err := st.PutKey(ctx, old); err != nil {
				return k, err
			}
		}
	}
	return k, nil
}

// keyring caches the store's signing keys.
type keyring struct {
	mu       sync.Mutex
	loaded   time.Time
	current  jwk.Key            // the private key tokens are signed with
	public   map[string]jwk.Key // by kid: current and retired public keys
	set      jwk.Set            // the same, for /auth/jwks
	lastMiss time.Time          // of a reload for an unknown kid
}

// loadKeys reads the keys from the store (creating the first one when
// there is none), drops retired keys older than keep, and caches them.
func (s *Server) loadKeys(ctx context.Context, force bool) error {
	kr := &s.keys
	kr.mu.Lock()
	defer kr.mu.Unlock()
	now := s.now()
	if !force && kr.current != nil && now.Sub(kr.loaded) < s.KeyReload {
		return nil
	}
	keys, err := s.Store.Keys(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(keys, func(k SigningKey) bool { return k.Retired.IsZero() }) {
		k, err := NewSigningKey(now)
		if err != nil {
			return err
		}
		if err := s.Store.PutKey(ctx, k); err != nil {
			return err
		}
		s.Logger.Info("created a token signing key", "kid", k.ID)
		keys = append(keys, k)
	}
	// Newest first: of several current keys (two servers started at once),
	// the newest signs.
	slices.SortFunc(keys, func(a, b SigningKey) int { return b.Created.Compare(a.Created) })
	keep := s.AccessTokenLifetime + 5*time.Minute
	var current jwk.Key
	public := map[string]jwk.Key{}
	set := jwk.NewSet()
	for _, sk := range keys {
		if !sk.Retired.IsZero() && now.Sub(sk.Retired) > keep {
			if err := s.Store.DeleteKey(ctx, sk.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			continue
		}
		priv, err := jwk.ParseKey(sk.JWK)
		if err != nil {
			return fmt.Errorf("smart: signing key %s: %w", sk.ID, err)
		}
		pub, err := jwk.PublicKeyOf(priv)
		if err != nil {
			return fmt.Errorf("smart: signing key %s: %w", sk.ID, err)
		}
		if sk.Retired.IsZero() && current == nil {
			current = priv
		}
		public[sk.ID] = pub
		_ = set.AddKey(pub)
	}
	kr.current, kr.public, kr.set, kr.loaded = current, public, set, now
	return nil
}

// signingKey returns the key to sign with.
func (s *Server) signingKey(ctx context.Context) (jwk.Key, error) {
	if err := s.loadKeys(ctx, false); err != nil {
		return nil, err
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	return s.keys.current, nil
}

// verificationKey returns the public key kid, reloading the keys once in
// a while for a kid not known (a key made by another server or the CLI).
func (s *Server) verificationKey(ctx context.Context, kid string) (jwk.Key, bool) {
	if err := s.loadKeys(ctx, false); err != nil {
		s.Logger.Warn("loading the signing keys failed", "err", err)
	}
	kr := &s.keys
	kr.mu.Lock()
	k, ok := kr.public[kid]
	reload := !ok && s.now().Sub(kr.lastMiss) > 10*time.Second
	if reload {
		kr.lastMiss = s.now()
	}
	kr.mu.Unlock()
	if ok || !reload {
		return k, ok
	}
	if err := s.loadKeys(ctx, true); err != nil {
		s.Logger.Warn("loading the signing keys failed", "err", err)
		return nil, false
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	k, ok = kr.public[kid]
	return k, ok
}

// JWKS returns the public keys, current and retired, as a JWK Set.
func (s *Server) JWKS(ctx context.Context) ([]byte, error) {
	if err := s.loadKeys(ctx, false); err != nil {
		return nil, err
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	return json.Marshal(s.keys.set)
}
