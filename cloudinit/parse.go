package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// Header is the first line of every cloud-config document.
const Header = "#cloud-config\n"

// Parse reads user-data as Build produces it, plain or compressed
// (base64(gzip(document)) on one line), into a Config. Keys the model does
// not know are an error wrapping ErrInvalid, as is a document without the
// #cloud-config header. Secrets, MaxSize and Compress are not recovered.
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
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: parse cloud-config: %v", ErrInvalid, err)
	}
	return cfg, nil
}

// Decode returns the plain document of user-data: data itself when it is
// plain, or the gunzipped content when data is base64(gzip(document)).
func Decode(data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte("#")) {
		return data, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: user-data is neither a cloud-config document nor base64: %v", ErrInvalid, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: base64 user-data is not gzip: %v", ErrInvalid, err)
	}
	doc, err := io.ReadAll(io.LimitReader(zr, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: gunzip user-data: %v", ErrInvalid, err)
	}
	return doc, nil
}
