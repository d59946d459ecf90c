package cloudinit

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// toNode turns the typed model into a yaml.Node tree, reading the same
// yaml tags Parse decodes with (name, omitempty, "-"), so that Build can
// choose each string's style before gopkg.in/yaml.v3 emits it. It knows
// the kinds the model uses: structs, pointers, slices, string-keyed maps
// (keys sorted), strings, bools and ints.
func toNode(v reflect.Value) (*yaml.Node, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return toNode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := range t.NumField() {
			name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "-" || !t.Field(i).IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(t.Field(i).Name)
			}
			f := v.Field(i)
			if opts == "omitempty" && f.IsZero() || (f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && opts == "omitempty" && f.Len() == 0 {
				continue
			}
			c, err := toNode(f)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(name), c)
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: make([]*yaml.Node, 0, v.Len())}
		for i := range v.Len() {
			c, err := toNode(v.Index(i))
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
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: make([]*yaml.Node, 0, 2*len(keys))}
		for _, k := range keys {
			c, err := toNode(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(k), c)
		}
		return n, nil
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}, nil
	case reflect.Int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(int(v.Int()))}, nil
	default:
		return nil, fmt.Errorf("cloudinit: cannot render %s", v.Type())
	}
}

// strNode returns a string scalar in the style both YAML readers that
// matter agree on: yaml.v3 (Parse) and PyYAML (cloud-init), which follows
// YAML 1.1.
//
//   - Multi-line text is a literal block, unless it starts with a space or
//     a line break (yaml.v3 v3.0.1 writes a wrong indentation indicator for
//     those inside sequences) or holds a carriage return or a Unicode line
//     break (PyYAML folds those into "\n" inside a block): double-quoted.
//   - A one-line string that PyYAML would resolve to something else when
//     plain ("=", "1_0", "1:20", "yes", "2001-12-14", ...) is double-quoted.
//   - Everything else is left to yaml.v3, which quotes what YAML 1.2 would
//     not read back as the same string.
func strNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch {
	case strings.ContainsAny(s, "\r\u0085\u2028\u2029"):
		n.Style = yaml.DoubleQuotedStyle
	case strings.IndexByte(s, '\n') >= 0:
		if s[0] == ' ' || s[0] == '\n' || s[0] == '\t' {
			n.Style = yaml.DoubleQuotedStyle
		} else {
			n.Style = yaml.LiteralStyle
		}
	case pyImplicit(s):
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}
