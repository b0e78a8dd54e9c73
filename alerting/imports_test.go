package alerting

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The engine is pure: stdlib (minus I/O), internal/configerr and
// internal/jsonenc only, no clock, no goroutines.
func TestPureImports(t *testing.T) {
	forbidden := map[string]string{
		"net": "no I/O", "net/http": "no I/O", "os": "no I/O", "os/exec": "no I/O", "io/ioutil": "no I/O",
		"log": "no logging", "log/slog": "no logging", "sync": "single-goroutine owner", "math/rand": "deterministic",
		"math/rand/v2": "deterministic",
	}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, fn := range files {
		if strings.HasSuffix(fn, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, fn, nil, 0)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbidden[p]; bad {
				t.Errorf("%s imports %s: %s", fn, p, why)
			}
			if strings.Contains(p, ".") && p != "github.com/canary-gw/canary/internal/configerr" &&
				p != "github.com/canary-gw/canary/internal/jsonenc" {
				t.Errorf("%s imports %s: only stdlib, internal/configerr and internal/jsonenc", fn, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: goroutine at %s", fn, fset.Position(x.Pos()))
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == "time" {
					switch x.Sel.Name {
					case "Now", "Sleep", "Since", "Until", "NewTimer", "NewTicker", "After", "AfterFunc", "Tick":
						t.Errorf("%s: time.%s at %s (time is passed in)", fn, x.Sel.Name, fset.Position(x.Pos()))
					}
				}
			}
			return true
		})
	}
}
