package smart

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// ExternalVerifier verifies access tokens of an external identity provider
// (Keycloak, Entra ID, Okta, …): JWTs signed with a key of the provider's
// JWKS (fetched, cached, refetched for an unknown kid), from Issuer, for
// Audience, their scopes in ScopeClaim. The claims patient, encounter,
// fhirUser and client_id (or azp) map to the Access as in this server's
// own tokens. It does not know about revocation: keep access tokens short.
type ExternalVerifier struct {
	Issuer   string
	JWKSURL  string
	Audience string // empty: aud is not checked
	// ScopeClaim names the claim of the scopes: "scope" (default; a
	// space-separated string) or "scp" (an array, or a string).
	ScopeClaim string
	HTTPClient *http.Client
	Now        func() time.Time

	once  sync.Once
	cache *jwksCache
}

var _ Verifier = (*ExternalVerifier)(nil)

// externalAlgs are the signature algorithms accepted: asymmetric ones only.
var externalAlgs = []jwa.SignatureAlgorithm{jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512, jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA}

func (v *ExternalVerifier) init() {
	v.once.Do(func() {
		if v.ScopeClaim == "" {
			v.ScopeClaim = "scope"
		}
		if v.HTTPClient == nil {
			v.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
		if v.Now == nil {
			v.Now = time.Now
		}
		v.cache = newJWKSCache(v.HTTPClient, v.Now)
	})
}

// Verify checks the token and maps its claims to an Access.
func (v *ExternalVerifier) Verify(ctx context.Context, token string) (*Access, error) {
	v.init()
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, ErrTokenMalformed
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	alg := h.Algorithm()
	if !slices.Contains(externalAlgs, alg) {
		return nil, ErrTokenKey
	}
	set, err := v.cache.keys(ctx, v.JWKSURL, h.KeyID())
	if err != nil {
		return nil, errors.New("smart: the identity provider's keys cannot be fetched")
	}
	var key jwk.Key
	if kid := h.KeyID(); kid != "" {
		key, _ = set.LookupKeyID(kid)
	} else if set.Len() == 1 {
		key, _ = set.Key(0)
	}
	if key == nil {
		return nil, ErrTokenKey
	}
	opts := []jwt.ParseOption{
		jwt.WithKey(alg, key), jwt.WithValidate(true), jwt.WithIssuer(v.Issuer),
		jwt.WithClock(jwt.ClockFunc(v.Now)), jwt.WithAcceptableSkew(30 * time.Second),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
	}
	if v.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.Audience))
	}
	t, err := jwt.Parse([]byte(token), opts...)
	if err != nil {
		if jws.IsVerificationError(err) {
			return nil, ErrTokenKey
		}
		return nil, ErrTokenInvalid
	}
	return accessOf(t, v.ScopeClaim), nil
}
