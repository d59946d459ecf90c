// Package providertest is the conformance suite that every
// provider.Provider driver runs: one call to [Run] from the driver's test
// file checks the contract the rest of Hatchery relies on.
//
// # What it checks
//
//   - Create returns the server (an ID, the name, an address); Get
//     returns it again with its labels; Delete deletes it; Get of a
//     deleted server wraps provider.ErrNotFound (eventually: a cloud may
//     take a while); Delete of a deleted server succeeds.
//   - Creating a name that is already a server of ours adopts it: the
//     same ID, no second server.
//   - A name taken by a server the driver did not create is an error
//     wrapping provider.ErrConflict, where the driver can tell
//     ([Driver.Foreign]).
//   - The request's labels are kept (drivers may add their own).
//   - Invalid requests (names that are not a lowercase host name label)
//     wrap provider.ErrInvalid and cost no request to the cloud
//     ([Driver.Calls]) and make no server.
//   - Concurrent creates of different names all succeed, with distinct
//     IDs.
//   - A cancelled or expired context stops Create, Get, Delete (and List)
//     with an error wrapping the context's, and a cancelled Delete
//     deletes nothing.
//
// And, when the driver implements them, the optional interfaces:
//
//   - provider.Lister: List by a label selector returns exactly our
//     servers with those labels: not deleted ones (eventually), not ones
//     the driver did not create.
//   - provider.InstanceIDer: a non-empty instance ID, distinct per
//     server.
//   - provider.CredentialChecker: the driver's credentials pass; refused
//     ones ([Driver.Unauthorized]) wrap provider.ErrUnauthorized.
//   - provider.UserDataLimiter: a positive limit, and user-data over it
//     wraps provider.ErrInvalid before any request.
//
// # Usage
//
// A driver's test file passes a [Harness] that opens a fresh driver per
// test:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, providertest.Harness{
//			Open: func(t *testing.T) providertest.Driver {
//				p := fake.New(fake.Options{Dir: t.TempDir()})
//				t.Cleanup(func() { p.Close() })
//				return providertest.Driver{Provider: p}
//			},
//		})
//	}
//
// Tests run in parallel, each on its own driver; what they create they
// delete in t.Cleanup.
package providertest
