package fake

import (
	"crypto/rand"
	"encoding/base64"
	"math/big"

	gossh "golang.org/x/crypto/ssh"
)

// A Debian 12 server has a DSA host key besides its RSA, ECDSA and
// ed25519 ones (OpenSSH 9.2 still makes one, and cloud-init's ssh module
// keeps it), and phone_home posts it as pub_key_dsa. A simulated server
// has one too, for that: nothing speaks ssh-dss to it.
//
// Its group is the one of a key ssh-keygen made on a provider/nspawn
// server (public parameters, 1024-bit p, 160-bit q), so that a key costs
// one modular exponentiation instead of a parameter search; y = g^x mod p
// for a random x, as crypto/dsa would make it.
var dsaP, dsaQ, dsaG = hexInt(
	"f379b29803b39402b148ec7035476c4cdcda177357a674ae9aa00186166ec8416382bb16f08f6faf602b7485771d77d6e22234d064991924025efced9c590ac2d8f0dab4ff7a03221543293035f85484388be3a65fb63f7ec5d2213f0f840c20b20882eca016a648ec8f537e2f135bb9b5e82aae75516c2c3fb352e8720194c1"), hexInt(
	"85d9f4f98b09a68e6a4769b0d6e693e5b41bc74b"), hexInt(
	"c8ce6be9feef740d8c73d91fea2246c8a3f6d0c7c2acf906f9ab3c75f6bdec5c5ecbbbc6fd04f9c13e1b2c89f66de3128015230d7fd7c1125d62673affbdc0358405b7cc7b86159c74e27fb3a2b12a387115db16389d532be38d54eaa61b292a8e9f794acf9e316487f32335a28d6fa0ee1a48e0596115ec2d4ddc415bbdb885")

func hexInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("fake: bad DSA parameter " + s)
	}
	return n
}

// newDSAKeyLine returns a new DSA public key as its .pub line: "ssh-dss
// BASE64 root@HOST\n".
func newDSAKeyLine(host string) (string, error) {
	x, err := rand.Int(rand.Reader, new(big.Int).Sub(dsaQ, big.NewInt(1)))
	if err != nil {
		return "", err
	}
	x.Add(x, big.NewInt(1)) // 1 <= x < q
	y := new(big.Int).Exp(dsaG, x, dsaP)
	// The key's wire format (RFC 4253 6.6): golang.org/x/crypto/ssh no
	// longer parses ssh-dss, but still writes mpints.
	blob := gossh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{"ssh-dss", dsaP, dsaQ, dsaG, y})
	return "ssh-dss " + base64.StdEncoding.EncodeToString(blob) + " root@" + host + "\n", nil
}
