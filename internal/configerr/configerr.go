// Package configerr carries configuration problems as field-path errors, so
// that the site-config loader can map every problem to the YAML line it came
// from and print it as FILE:LINE: field.path: message. Each component's
// Validate returns these; only the loader knows about files and lines.
//
// It imports nothing of the project.
package configerr

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Severity tells an error from a warning. Warnings (for example an override
// that loosens a regulatory alarm limit) are printed loudly but do not fail
// `canary check`.
type Severity int

const (
	// SeverityError makes the config unusable.
	SeverityError Severity = iota
	// SeverityWarning is reported but the config still loads.
	SeverityWarning
)

// FieldError is one problem with one field. Path is relative to the
// component that produced it (e.g. "sensors[2].order") until a caller
// prefixes it with where that component sits in the site config.
type FieldError struct {
	Path     string
	Msg      string
	Severity Severity
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Field returns an error for the field at path.
func Field(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Warn returns a warning for the field at path.
func Warn(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Severity: SeverityWarning}
}

// List collects field errors; the zero value is ready to use.
type List []*FieldError

// Add appends an error for path.
func (l *List) Add(path, format string, args ...any) {
	*l = append(*l, Field(path, format, args...))
}

// Warn appends a warning for path.
func (l *List) Warn(path, format string, args ...any) {
	*l = append(*l, Warn(path, format, args...))
}

// Merge appends every field error found in err, prefixed with prefix (which
// may be empty). Errors that are not field errors are kept with the prefix as
// their path.
func (l *List) Merge(prefix string, err error) {
	for _, fe := range Flatten(err) {
		*l = append(*l, &FieldError{Path: join(prefix, fe.Path), Msg: fe.Msg, Severity: fe.Severity})
	}
}

// Err returns the list as one error, or nil when it holds nothing.
// Warnings alone still produce a non-nil error; use HasErrors to decide
// whether a config is usable.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Prefix rewrites the paths of every field error inside err (a single
// error or an errors.Join tree) with prefix, e.g. "devices[0]".
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var l List
	l.Merge(prefix, err)
	return l.Err()
}

// Flatten returns every field error in err, unwrapping errors.Join trees.
// A plain error becomes a FieldError with an empty path.
func Flatten(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) && fe == err {
		return []*FieldError{fe}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*FieldError
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return []*FieldError{{Msg: err.Error()}}
}

// HasErrors reports whether err holds anything worse than a warning.
func HasErrors(err error) bool {
	for _, fe := range Flatten(err) {
		if fe.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Sorted returns the field errors of err sorted by path, for stable output.
func Sorted(err error) []*FieldError {
	out := Flatten(err)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	default:
		return prefix + "." + path
	}
}
