package smart

import (
	"context"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Internals for the external tests (package smart_test), which may import
// the Store backends: those import smart, so tests in package smart cannot.
var (
	S256        = s256
	RandomToken = randomToken
)

type ClientView = clientView

// ExpireKeys makes s reread its signing keys at their next use.
func (s *Server) ExpireKeys() {
	s.keys.mu.Lock()
	s.keys.loaded = time.Time{}
	s.keys.mu.Unlock()
}

func (s *Server) LoadKeys(ctx context.Context, force bool) error { return s.loadKeys(ctx, force) }

func (s *Server) VerificationKey(ctx context.Context, kid string) (jwk.Key, bool) {
	return s.verificationKey(ctx, kid)
}
