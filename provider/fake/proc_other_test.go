//go:build !unix

package fake_test

// gone reports true: there is no namespace holder where there is no unix.
func gone(int) bool { return true }
