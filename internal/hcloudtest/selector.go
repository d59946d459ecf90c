package hcloudtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Selector is a parsed label selector: every requirement must hold.
type Selector []Requirement

// Requirement is one term of a label selector.
type Requirement struct {
	Key    string
	Op     string   // "=", "!=", "exists", "!", "in", "notin"
	Values []string // one for = and !=, the list for in and notin
}

// ParseSelector parses a label selector in Hetzner's syntax (see the
// package documentation). The empty selector matches everything.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	terms, err := splitTerms(s)
	if err != nil {
		return nil, err
	}
	for _, t := range terms {
		r, err := parseTerm(t)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", t, err)
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// splitTerms splits a selector at the commas outside parentheses.
func splitTerms(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var terms []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
			if depth > 1 {
				return nil, errors.New("nested parentheses")
			}
		case ')':
			depth--
			if depth < 0 {
				return nil, errors.New("unbalanced parentheses")
			}
		case ',':
			if depth == 0 {
				terms = append(terms, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced parentheses")
	}
	terms = append(terms, strings.TrimSpace(s[start:]))
	if slices.Contains(terms, "") {
		return nil, errors.New("empty requirement")
	}
	return terms, nil
}

func parseTerm(t string) (Requirement, error) {
	if k, ok := strings.CutPrefix(t, "!"); ok {
		k = strings.TrimSpace(k)
		return Requirement{Key: k, Op: "!"}, checkKey(k)
	}
	if i := strings.IndexByte(t, '('); i >= 0 {
		if !strings.HasSuffix(t, ")") {
			return Requirement{}, errors.New("text after )")
		}
		head := strings.Fields(t[:i])
		if len(head) != 2 || (head[1] != "in" && head[1] != "notin") {
			return Requirement{}, errors.New("want KEY in (...) or KEY notin (...)")
		}
		var vals []string
		for v := range strings.SplitSeq(t[i+1:len(t)-1], ",") {
			v = strings.TrimSpace(v)
			if err := checkValue(v); err != nil {
				return Requirement{}, err
			}
			vals = append(vals, v)
		}
		return Requirement{Key: head[0], Op: head[1], Values: vals}, checkKey(head[0])
	}
	for _, op := range []string{"!=", "==", "="} {
		if k, v, ok := strings.Cut(t, op); ok {
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if op == "==" {
				op = "="
			}
			if err := checkKey(k); err != nil {
				return Requirement{}, err
			}
			return Requirement{Key: k, Op: op, Values: []string{v}}, checkValue(v)
		}
	}
	return Requirement{Key: t, Op: "exists"}, checkKey(t)
}

func checkKey(k string) error {
	if k == "" || strings.ContainsAny(k, " \t=!(),") {
		return fmt.Errorf("invalid key %q", k)
	}
	return nil
}

func checkValue(v string) error {
	if strings.ContainsAny(v, " \t=!(),") {
		return fmt.Errorf("invalid value %q", v)
	}
	return nil
}

// Matches reports whether labels satisfy every requirement.
func (sel Selector) Matches(labels map[string]string) bool {
	for _, r := range sel {
		v, ok := labels[r.Key]
		var hold bool
		switch r.Op {
		case "=":
			hold = ok && v == r.Values[0]
		case "!=":
			hold = !ok || v != r.Values[0]
		case "exists":
			hold = ok
		case "!":
			hold = !ok
		case "in":
			hold = ok && slices.Contains(r.Values, v)
		case "notin":
			hold = !ok || !slices.Contains(r.Values, v)
		}
		if !hold {
			return false
		}
	}
	return true
}
