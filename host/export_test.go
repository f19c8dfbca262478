package host

import "time"

// WithDefaultDialTimeout replaces DefaultDialTimeout for one dial, so that
// tests see the default's behaviour without waiting ten seconds.
func WithDefaultDialTimeout(d time.Duration) DialOption {
	return func(o *dialOptions) { o.defaultTimeout = d }
}
