//go:build !linux

package main

// releaseStartupPages is Linux-only (docs/performance-history.md, item 47):
// elsewhere it releases nothing.
func releaseStartupPages() (int64, error) { return 0, nil }
