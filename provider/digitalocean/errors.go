package digitalocean

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/digitalocean/godo"

	"github.com/hatchery-dev/hatchery/provider"
)

// mapError translates a godo error to the provider error callers act on,
// keeping the cause: errors.Is works for both. godo's ErrorResponse keeps
// the status and the message but not DigitalOcean's error id, so 422s are
// told apart by their message, as DigitalOcean words them. Errors it does
// not know are returned as they are.
func mapError(err error) error {
	var er *godo.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return err
	}
	var kind error
	msg := strings.ToLower(er.Message)
	switch code := er.Response.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		kind = provider.ErrUnauthorized
	case code == http.StatusNotFound:
		kind = provider.ErrNotFound
	case code == http.StatusTooManyRequests:
		kind = provider.ErrRateLimited
	case code != http.StatusUnprocessableEntity && code != http.StatusBadRequest:
		return err
	case strings.Contains(msg, "droplet limit") || strings.Contains(msg, "exceed your"):
		// "creating this/these droplet(s) will exceed your droplet limit"
		kind = provider.ErrQuota
	case strings.Contains(msg, "pending event"):
		// "Droplet already has a pending event.": a droplet busy with its
		// creation refuses actions for a while; trying later works.
		return err
	case strings.Contains(msg, "not available") || strings.Contains(msg, "unavailable") || strings.Contains(msg, "capacity"):
		// "Size is not available in this region.", "Region is not available"
		kind = provider.ErrUnavailable
	default:
		kind = provider.ErrInvalid
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// ambiguous reports whether a failed create request may have made a
// droplet anyway: an answer lost on the way back (a network error, a
// timeout) or a 5xx, which a gateway may send after the backend did the
// work. A 4xx, an argument error or a request the Transport never sent
// made nothing.
func ambiguous(err error) bool {
	var er *godo.ErrorResponse
	var rl *RateLimitError
	var arg *godo.ArgError
	switch {
	case errors.As(err, &rl), errors.As(err, &arg):
		return false
	case errors.As(err, &er):
		return er.Response == nil || er.Response.StatusCode >= 500
	}
	return true
}
