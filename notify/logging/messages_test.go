package logging

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// prose are the log calls whose message may be built: a line in a shape
// another program reads, and lines relayed from a tool.
var prose = map[string]string{
	"sst/session.go": "stock's closing \"Total time on <role>: N seconds\" (time=1), which tools that time a stock SST read",
	"sst/logs.go":    "mariadb-backup's own lines relayed to syslog, as stock's \"| logger\" does",
}

// TestConstantMessages: every log call outside tests has a constant
// message, its facts in attributes (journald makes them fields; Text
// shows them after the message), so that nobody builds one with
// fmt.Sprintf or concatenation again.
func TestConstantMessages(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	allowed := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok || len(c.Args) == 0 || !isLogCall(c) {
				return true
			}
			msg := c.Args[0]
			if sel := c.Fun.(*ast.SelectorExpr).Sel.Name; strings.HasSuffix(sel, "Context") && len(c.Args) > 1 {
				msg = c.Args[1]
			}
			if constant(msg) {
				return true
			}
			if _, ok := prose[filepath.ToSlash(rel)]; ok {
				allowed[filepath.ToSlash(rel)]++
				return true
			}
			t.Errorf("%s: a log message that is not constant: put its facts in attributes", fset.Position(c.Pos()))
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for file, why := range prose {
		if allowed[file] != 1 {
			t.Errorf("%s: %d built messages, want the one for %s", file, allowed[file], why)
		}
	}
}

// isLogCall: a method Debug, Info, Warn or Error (or its Context form) of
// something other than a package (http.Error) and with arguments (an
// fs.DirEntry's Info() has none).
func isLogCall(c *ast.CallExpr) bool {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	switch strings.TrimSuffix(sel.Sel.Name, "Context") {
	case "Debug", "Info", "Warn", "Error":
	default:
		return false
	}
	if id, ok := sel.X.(*ast.Ident); ok && (id.Name == "http" || id.Name == "slog") {
		return id.Name == "slog"
	}
	return true
}

// constant: a string literal, or literals and exported constants joined
// by +.
func constant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.ParenExpr:
		return constant(e.X)
	case *ast.BinaryExpr:
		return e.Op == token.ADD && constant(e.X) && constant(e.Y)
	case *ast.Ident:
		return unicode.IsUpper(rune(e.Name[0]))
	case *ast.SelectorExpr:
		_, pkg := e.X.(*ast.Ident)
		return pkg && unicode.IsUpper(rune(e.Sel.Name[0]))
	}
	return false
}
