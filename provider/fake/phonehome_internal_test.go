package fake

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A failed phone_home is logged; the error must not quote the callback
// token that sits in the URL's query.
func TestPhoneHomeErrorHidesToken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens: the POST fails
	s := &Server{client: &http.Client{}}
	_, err = s.post(context.Background(), http.MethodPost, "http://"+addr+"/cb/x?token=0123456789abcdef", []byte("a=b"), "application/x-www-form-urlencoded")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "0123456789abcdef")
	assert.Contains(t, err.Error(), "[query removed]")
	var ue *url.Error
	require.True(t, errors.As(err, &ue))

	plain := errors.New("no url here")
	assert.Equal(t, plain, withoutQuery(plain))
}
