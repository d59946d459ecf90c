package rachel8

// KeyringCheck is keyringCheck, for the tests of the keyring pinning with
// gpg.
var KeyringCheck = keyringCheck
