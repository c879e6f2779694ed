package app

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
)

// RunAll runs every runner until ctx is done or one of them fails; then it cancels the
// rest and waits for them. A runner returning nil before ctx ends is not an error (it
// had nothing more to do). The first real error is returned.
func RunAll(ctx context.Context, runners ...Runner) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		g.Go(func() error {
			err := r.Run(ctx)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil
			}
			return err
		})
	}
	return g.Wait()
}
