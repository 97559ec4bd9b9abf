//go:build !pgbgtest

package testhook

// On says whether the hooks are built in: false in the product.
const On = false

// HoldAt is "": the product never holds.
func HoldAt() string { return "" }

// Hold returns at once.
func Hold(done <-chan struct{}, dir, point string) {}

// NoGuard is false: the product's cutover always has its guard.
func NoGuard() bool { return false }
