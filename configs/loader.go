package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/internal/configerr"
)

// Problem is one thing wrong with a config file, located by line.
type Problem struct {
	File    string
	Line    int
	Path    string
	Msg     string
	Warning bool
}

// String formats the problem as FILE:LINE: field.path: message, the form
// editors and CI annotators understand.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(p.Line))
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every error found in one config file.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// defaulter and validator are what each config section implements.
type defaulter interface{ SetDefaults() }
type validator interface{ Validate() error }

// LoadSite reads and validates a site config. Warnings (for example an
// alarm override that loosens a regulatory limit) are returned even when the
// config is valid; err is an *Error listing every problem.
func LoadSite(path string) (*Site, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read site config: %w", err)
	}
	var s Site
	warnings, err := Parse(path, data, &s)
	if err != nil {
		return nil, warnings, err
	}
	return &s, warnings, nil
}

// Parse decodes data into target (a pointer to a config struct such as
// Site or Ingest), rejecting unknown keys, then applies defaults and
// validates. name is used in problem locations.
func Parse(name string, data []byte, target any) (warnings []Problem, err error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		line := 1
		msg := err.Error()
		if errors.Is(err, io.EOF) {
			msg = "empty config file"
		}
		if l, m, ok := yamlErrLine(msg); ok {
			line, msg = l, m
		}
		return nil, &Error{Problems: []Problem{{File: name, Line: line, Msg: msg}}}
	}
	// The decoder reads one document at a time: anything after a second
	// "---" would otherwise be silently ignored. The first document is
	// still checked, so that every problem is reported at once.
	var extra *Problem
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		extra = &Problem{Line: next.Line, Msg: fmt.Sprintf("a config file holds one YAML document; found another at line %d", next.Line)}
	} else if !errors.Is(err, io.EOF) {
		line, msg, _ := yamlErrLine(err.Error())
		extra = &Problem{Line: max(line, 1), Msg: msg}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w := walker{index: map[string]int{}}
	w.walk(root, reflect.TypeOf(target).Elem(), "")
	for _, n := range w.bad {
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	// Type problems were reported by the walker with paths; the decoder's
	// own messages would only repeat them without paths, so its TypeError is
	// dropped and decoding goes on with what did parse. Validation still runs
	// on the rest, so that every problem is reported at once.
	if err := root.Decode(target); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			w.add(root.Line, "", "%s", err.Error())
		}
	}
	bad := make([]string, 0, len(w.problems))
	for _, p := range w.problems {
		bad = append(bad, p.Path)
	}
	// Added after bad is collected: its empty path would hide every
	// validation error without a path.
	if extra != nil {
		w.problems = append(w.problems, *extra)
	}
	if d, ok := target.(defaulter); ok {
		d.SetDefaults()
	}
	if v, ok := target.(validator); ok {
		for _, fe := range configerr.Flatten(v.Validate()) {
			if underAny(fe.Path, bad) {
				continue
			}
			w.problems = append(w.problems, Problem{
				File: name, Line: w.lineOf(fe.Path), Path: fe.Path, Msg: fe.Msg,
				Warning: fe.Severity == configerr.SeverityWarning,
			})
		}
	}
	var errs []Problem
	for i := range w.problems {
		w.problems[i].File = name
		if w.problems[i].Warning {
			warnings = append(warnings, w.problems[i])
		} else {
			errs = append(errs, w.problems[i])
		}
	}
	sortProblems(warnings)
	sortProblems(errs)
	if len(errs) > 0 {
		return warnings, &Error{Problems: errs}
	}
	return warnings, nil
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Path < ps[j].Path
	})
}

// yamlErrLine splits "yaml: line 3: mapping values are not allowed" into
// its line and message.
func yamlErrLine(msg string) (int, string, bool) {
	m := strings.TrimPrefix(msg, "yaml: ")
	if !strings.HasPrefix(m, "line ") {
		return 0, m, false
	}
	rest := strings.TrimPrefix(m, "line ")
	i := strings.Index(rest, ":")
	if i < 0 {
		return 0, m, false
	}
	n, err := strconv.Atoi(rest[:i])
	if err != nil {
		return 0, m, false
	}
	problem := strings.TrimSpace(rest[i+1:])
	if parserProblem(problem) {
		// yaml.v3 counts a parser error's line (unlike a scanner
		// error's) from 0, and names the start of the block it was
		// parsing when it has one, else where it stopped.
		return n + 1, "invalid YAML: " + problem + " (here, or in the block that starts here)", true
	}
	return n, "invalid YAML: " + problem, true
}

// parserProblem reports whether a yaml.v3 error message is one of its
// parser's (parserc.go), not its scanner's.
func parserProblem(msg string) bool {
	for _, p := range []string{"did not find expected ", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// walker checks a YAML node tree against a Go config type: unknown keys,
// wrong shapes and scalars that do not parse, each reported with its
// field path; and it records the line of every path it sees so that
// validation errors can be located.
type walker struct {
	index    map[string]int
	problems []Problem
	bad      []*yaml.Node // nodes that must not reach the decoder
}

// reject records a problem with node n and blanks n, so that the decoder
// (which stops at the first UnmarshalText error) goes on with the rest.
func (w *walker) reject(n *yaml.Node, path, format string, args ...any) {
	w.add(n.Line, path, format, args...)
	w.bad = append(w.bad, n)
}

func (w *walker) add(line int, path, format string, args ...any) {
	w.problems = append(w.problems, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of path, or of its nearest recorded parent (a
// defaulted field has no line of its own).
func (w *walker) lineOf(path string) int {
	for p := path; ; {
		if l, ok := w.index[p]; ok {
			return l
		}
		if p == "" {
			return 1
		}
		p = parentPath(p)
	}
}

func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndex(p, "["); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

// zeroMeansDefault lists, per config struct, the keys whose SetDefaults
// replaces a zero value, with the default to name. Written out, 0 would
// silently become the default; only the walker can tell it from a key left
// out, so it refuses it.
var zeroMeansDefault = map[reflect.Type]map[string]string{
	typeOf[Device](): {
		"poll":        modbus.DefaultPoll.String(),
		"timeout":     modbus.DefaultTimeout.String() + " (at most half the poll)",
		"max_backoff": modbus.DefaultMaxBackoff.String() + " (or the poll, if longer)",
	},
	typeOf[Outbox]():   {"max_bytes": fmt.Sprintf("%dMiB", defaultMaxBytes>>20)},
	typeOf[InfluxDB](): {"batch_wait": defaultBatchWait.String() + " (" + IngestBatchWait.String() + " in an ingest config)", "timeout": defaultInfluxTimeout.String()},
	typeOf[Action]():   {"confirm_timeout": defaultConfirmTimeout.String()},
	typeOf[Control]():  {"command_timeout": defaultCommandTimeout.String()},
}

var (
	durationType  = reflect.TypeOf(time.Duration(0))
	unmarshalType = reflect.TypeOf((*interface{ UnmarshalText([]byte) error })(nil)).Elem()
)

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, seen := w.index[path]; !seen {
		w.index[path] = n.Line
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isNull(n) {
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalType) || t == durationType {
		w.scalar(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.reject(n, path, "want a mapping of keys, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			kp := joinPath(path, key)
			if first, dup := seen[key]; dup {
				w.add(k.Line, kp, "duplicate key (first on line %d)", first)
				continue
			}
			seen[key] = k.Line
			f, ok := fields[key]
			if !ok {
				w.add(k.Line, kp, "%s", unknownKeyMsg(key, fields))
				continue
			}
			w.index[kp] = k.Line
			w.walk(v, f, kp)
			if def, ok := zeroMeansDefault[t][key]; ok && zeroScalar(v, f) {
				w.reject(v, kp, "must be positive; leave it out for the default %s", def)
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.reject(n, path, "want a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			w.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.reject(n, path, "want a mapping, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kp := joinPath(path, n.Content[i].Value)
			w.index[kp] = n.Content[i].Line
			w.walk(n.Content[i+1], t.Elem(), kp)
		}
	case reflect.Interface:
		// Free-form value: nothing to check.
	default:
		w.scalar(n, t, path)
	}
}

// scalar checks that a scalar node decodes into t, with a message a site
// engineer understands rather than a Go type name.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.reject(n, path, "want a single value, got %s", describe(n))
		return
	}
	v := reflect.New(t)
	if err := n.Decode(v.Interface()); err == nil {
		return
	}
	var want string
	switch {
	case t == durationType:
		want = "a duration such as 500ms, 1s or 5m"
	case reflect.PointerTo(t).Implements(unmarshalType):
		if err := v.Interface().(interface{ UnmarshalText([]byte) error }).UnmarshalText([]byte(n.Value)); err != nil {
			w.reject(n, path, "%v", err)
			return
		}
		want = "a valid value"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		want = "an integer"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		want = "a non-negative integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		want = "a number"
	case t.Kind() == reflect.String:
		want = "a string"
	default:
		want = "a " + t.Kind().String()
	}
	w.reject(n, path, "want %s, got %q", want, n.Value)
}

// zeroScalar reports whether n is a scalar that decodes into t as t's zero.
func zeroScalar(n *yaml.Node, t reflect.Type) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return false
	}
	v := reflect.New(t)
	return n.Decode(v.Interface()) == nil && v.Elem().IsZero()
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	default:
		return "something else"
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML keys of struct t (following inline embedded
// structs) to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// unknownKeyMsg names the unknown key and suggests the nearest known one;
// inline secrets get a pointer to the *_file key instead.
func unknownKeyMsg(key string, fields map[string]reflect.Type) string {
	if _, ok := fields[key+"_file"]; ok {
		return fmt.Sprintf("unknown key %q: secrets are never written inline; use %s_file (a file holding the secret) or the environment", key, key)
	}
	best, bestD := "", 3
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if d := editDistance(key, k); d < bestD || (d == bestD && best == "" && d <= len(key)/3) {
			if d <= 2 || d <= len(key)/3 {
				best, bestD = k, d
			}
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key %q (did you mean %q?)", key, best)
	}
	return fmt.Sprintf("unknown key %q (known keys: %s)", key, strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func typeOf[T any]() reflect.Type { return reflect.TypeOf((*T)(nil)).Elem() }

// underAny reports whether path is one of roots or lies below one, so that a
// field that failed to parse is not also reported as, say, missing.
func underAny(path string, roots []string) bool {
	for _, r := range roots {
		if path == r || (r != "" && strings.HasPrefix(path, r) && (path[len(r)] == '.' || path[len(r)] == '[')) {
			return true
		}
	}
	return false
}
