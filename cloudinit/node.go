package cloudinit

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodeBuilder turns the typed model into a yaml.Node tree, reading the
// same yaml tags Parse decodes with (name, omitempty, "-"), so that Build
// can choose each string's style before go.yaml.in/yaml/v3 emits it. It knows
// the kinds the model uses: structs, pointers, slices, string-keyed maps
// (keys sorted), strings, bools and ints. Nodes and their Content slices
// come from slabs: a few allocations instead of one or two per node.
type nodeBuilder struct {
	nodes []yaml.Node
	ptrs  []*yaml.Node
}

func (b *nodeBuilder) node(kind yaml.Kind, tag, value string) *yaml.Node {
	if len(b.nodes) == cap(b.nodes) {
		b.nodes = make([]yaml.Node, 0, 128)
	}
	b.nodes = append(b.nodes, yaml.Node{Kind: kind, Tag: tag, Value: value})
	return &b.nodes[len(b.nodes)-1]
}

// content returns an empty slice with room for n children.
func (b *nodeBuilder) content(n int) []*yaml.Node {
	if cap(b.ptrs)-len(b.ptrs) < n {
		b.ptrs = make([]*yaml.Node, 0, max(256, n))
	}
	c := b.ptrs[len(b.ptrs) : len(b.ptrs) : len(b.ptrs)+n]
	b.ptrs = b.ptrs[:len(b.ptrs)+n]
	return c
}

func (b *nodeBuilder) build(v reflect.Value) (*yaml.Node, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return b.node(yaml.ScalarNode, "!!null", "null"), nil
		}
		return b.build(v.Elem())
	case reflect.Struct:
		t := v.Type()
		n := b.node(yaml.MappingNode, "!!map", "")
		n.Content = b.content(2 * t.NumField())
		for i := range t.NumField() {
			name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "-" || !t.Field(i).IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(t.Field(i).Name)
			}
			f := v.Field(i)
			if strings.Contains(opts, "omitempty") && (f.IsZero() || (f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && f.Len() == 0) {
				continue
			}
			c, err := b.build(f)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, b.str(name), c)
		}
		return n, nil
	case reflect.Slice:
		n := b.node(yaml.SequenceNode, "!!seq", "")
		n.Content = b.content(v.Len())
		for i := range v.Len() {
			c, err := b.build(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("cloudinit: cannot render map key type %s", v.Type().Key())
		}
		keys := make([]string, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			keys = append(keys, it.Key().String())
		}
		slices.Sort(keys)
		n := b.node(yaml.MappingNode, "!!map", "")
		n.Content = b.content(2 * len(keys))
		for _, k := range keys {
			c, err := b.build(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, b.str(k), c)
		}
		return n, nil
	case reflect.String:
		return b.str(v.String()), nil
	case reflect.Bool:
		return b.node(yaml.ScalarNode, "", strconv.FormatBool(v.Bool())), nil // implicitly !!bool
	case reflect.Int:
		return b.node(yaml.ScalarNode, "", strconv.Itoa(int(v.Int()))), nil // implicitly !!int
	default:
		return nil, fmt.Errorf("cloudinit: cannot render %s", v.Type())
	}
}

// str returns a string scalar. When it stays plain, its tag is left empty
// (implicit) unless yaml.v3 (YAML 1.2) might resolve it to something other
// than a string: then the !!str tag makes yaml.v3 run its resolver, and
// quote it if so. The resolver allocates on every failed number parse, so
// it runs only where a number can be: yaml.v3 keys its rules on the first
// byte, and a plain scalar starting with + - or . resolves to a number only
// if it holds a digit. The words it knows (true, null, ~, .inf, ...) are
// all quoted already, for PyYAML. The emitter still quotes what cannot be
// plain for syntax (": ", "#", leading "-", ...).
func (b *nodeBuilder) str(s string) *yaml.Node {
	style := strStyle(s)
	tag := ""
	if style == 0 && s != "" && (s[0] >= '0' && s[0] <= '9' || strings.IndexByte("+-.", s[0]) >= 0 && strings.ContainsAny(s, "0123456789")) {
		tag = "!!str"
	}
	n := b.node(yaml.ScalarNode, tag, s)
	n.Style = style
	return n
}

// strStyle returns the style of a string scalar that both YAML readers
// that matter agree on: yaml.v3 (Parse) and PyYAML (cloud-init), which follows
// YAML 1.1.
//
//   - Multi-line text is a literal block, unless it starts with a space, a
//     tab or a line break (gopkg.in/yaml.v3 v3.0.1 wrote a block that
//     read back differently then, and go.yaml.in/yaml/v3 v3.0.6 still
//     writes one that does not parse for a leading tab; one rule for all
//     three keeps the output unchanged) or holds a carriage return or a
//     Unicode line break (PyYAML folds those into "\n" inside a block;
//     libyaml's emitter already avoids a block for them, this does not
//     rely on it): double-quoted.
//   - A one-line string that PyYAML would resolve to something else when
//     plain ("=", "1_0", "1:20", "yes", "2001-12-14", ...) is double-quoted.
//   - Everything else is left to yaml.v3, which quotes what YAML 1.2 would
//     not read back as the same string.
func strStyle(s string) yaml.Style {
	switch {
	case strings.ContainsAny(s, "\r\u0085\u2028\u2029"):
		return yaml.DoubleQuotedStyle
	case strings.IndexByte(s, '\n') >= 0:
		if s[0] == ' ' || s[0] == '\n' || s[0] == '\t' {
			return yaml.DoubleQuotedStyle
		}
		return yaml.LiteralStyle
	case pyImplicit(s):
		return yaml.DoubleQuotedStyle
	}
	return 0
}
