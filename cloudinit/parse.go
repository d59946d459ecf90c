package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Header is the first line of every cloud-config document.
const Header = "#cloud-config\n"

var errWrapped = errors.New("base64 is wrapped over several lines")

// Parse reads user-data as Build produces it, plain or compressed
// (base64(gzip(document)) on one line), into a Config. Keys the model does
// not know are an error wrapping ErrInvalid, as are a document without the
// #cloud-config header, a value of the wrong type, a duplicate key and a
// second YAML document. Parse does not validate the values (Build and
// Config.Validate do). Secrets, MaxSize and Compress are not recovered.
func Parse(data []byte) (Config, error) {
	doc, err := Decode(data)
	if err != nil {
		return Config{}, err
	}
	if !bytes.HasPrefix(doc, []byte(Header)) {
		return Config{}, fmt.Errorf("%w: user-data does not start with %q", ErrInvalid, Header[:len(Header)-1])
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, nil
		}
		return Config{}, fmt.Errorf("%w: parse cloud-config: %v", ErrInvalid, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: cloud-config holds more than one YAML document", ErrInvalid)
	}
	return cfg, nil
}

// Decode returns the plain document of user-data: data itself when it
// starts with '#', or the gunzipped content when data is
// base64(gzip(document)). Like cloud-init's Hetzner datasource, which
// decodes base64 only when every byte is in the base64 alphabet, Decode
// refuses base64 that is wrapped or ends in a newline. The gunzipped
// document may be at most MaxDocument bytes.
func Decode(data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte("#")) {
		return data, nil
	}
	if bytes.ContainsAny(data, "\r\n\t ") {
		return nil, fmt.Errorf("%w: base64 user-data must be one line without trailing newline (cloud-init ignores wrapped base64)", ErrInvalid)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: user-data is neither a cloud-config document nor base64: %v", ErrInvalid, err)
	}
	doc, err := gunzip(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: base64 user-data: %w", ErrInvalid, err)
	}
	return doc, nil
}

// gunzip decompresses at most MaxDocument bytes.
func gunzip(raw []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", err)
	}
	doc, err := io.ReadAll(io.LimitReader(zr, MaxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	if len(doc) > MaxDocument {
		return nil, fmt.Errorf("gunzips to more than %d bytes", MaxDocument)
	}
	return doc, nil
}
