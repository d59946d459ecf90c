package callback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// decodeObject reads body as exactly one JSON object and returns its
// members, numbers as json.Number. A member given twice is an error (which
// one would count? encoding/json silently keeps the last), compared after
// unescaping, so "host\u006eame" repeats "hostname". So is anything but
// white space after the object.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	obj := make(map[string]any)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok { // the decoder reports a non-string key as a syntax error already
			return nil, errors.New("member name is not a string")
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := obj[name]; dup {
			return nil, fmt.Errorf("field %q given twice", truncate(name))
		}
		obj[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the object")
	}
	return obj, nil
}
