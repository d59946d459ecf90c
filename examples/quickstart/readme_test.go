package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// embedExample is the file of provision's ExampleNew, whose newProvisioner
// is the README's "how to embed" snippet: so the snippet compiles and runs.
const embedExample = "../../provision/example_embed_test.go"

// The README must hold newProvisioner as it is in embedExample.
func TestEmbedSnippetInSync(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(embedExample)
	require.NoError(t, err)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, embedExample, src, parser.ParseComments)
	require.NoError(t, err)
	var snippet string
	examples := 0
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok {
			switch {
			case fn.Name.Name == "newProvisioner":
				snippet = string(src[fset.Position(fn.Doc.Pos()).Offset:fset.Position(fn.End()).Offset])
			case strings.HasPrefix(fn.Name.Name, "Example"):
				examples++
			case strings.HasPrefix(fn.Name.Name, "Test"), strings.HasPrefix(fn.Name.Name, "Benchmark"):
				t.Errorf("%s: %s would make pkg.go.dev show ExampleNew without newProvisioner (a whole-file example has no tests)", embedExample, fn.Name.Name)
			}
		}
	}
	require.NotEmpty(t, snippet)
	assert.Equal(t, 1, examples, "a whole-file example has one Example function")
	lines := strings.Count(snippet, "\n") + 1
	assert.LessOrEqual(t, lines, 36, "the snippet is meant to be short")

	block := regexp.MustCompile("(?s)```go\n(.*?)```")
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	found := 0
	for _, m := range block.FindAllStringSubmatch(string(data), -1) {
		if strings.Contains(m[1], "func newProvisioner(") {
			found++
			assert.Equal(t, snippet+"\n", m[1], "README.md: the embed snippet differs from %s's newProvisioner", embedExample)
		}
	}
	assert.Equal(t, 1, found, "README.md holds the embed snippet once (a ```go block with func newProvisioner)")
}
