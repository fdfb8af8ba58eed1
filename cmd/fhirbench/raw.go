package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
)

// rawStream tells the raw phase's random sources apart from the scenarios'.
const rawStream = 100

// rawRead opens the stopped server's store in-process and measures the read
// workload directly against Store.Read.
func (b *bench) rawRead(ctx context.Context, dataDir string) (sr scenarioResult, err error) {
	s := sqlitestore.New(dataDir)
	if err := s.Open(ctx); err != nil {
		return sr, fmt.Errorf("fhirbench: open the store in %s: %w", dataDir, err)
	}
	defer func() {
		if cerr := s.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("fhirbench: close the store: %w", cerr))
		}
	}()
	fmt.Fprintln(b.out)
	return b.repeat(ctx, "raw read", rawStream, func(rng *rand.Rand) op {
		return func(ctx context.Context) error {
			_, err := s.Read(ctx, "Patient", b.randomRecord(rng).id)
			return err
		}
	})
}
