//go:build !linux

package main

import "errors"

// releaseStartupPages is Linux-only (docs/performance-history.md, item 47):
// elsewhere it releases nothing.
func releaseStartupPages() (int64, error) { return 0, nil }

// faultAroundOff is Linux-only (docs/performance-history.md, item 52).
func faultAroundOff() error { return errors.New("fault-around off: Linux only") }
