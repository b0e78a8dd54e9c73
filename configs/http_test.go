package configs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/canary-gw/canary/internal/configerr"
)

func fieldErrors(err error) []string {
	var out []string
	for _, fe := range configerr.Sorted(err) {
		sev := "error"
		if fe.Severity == configerr.SeverityWarning {
			sev = "warning"
		}
		out = append(out, sev+" "+fe.Error())
	}
	return out
}

func TestHTTPDefaults(t *testing.T) {
	var h HTTP
	h.SetDefaults()
	require.Equal(t, "127.0.0.1:8080", h.Listen, "loopback unless configured")
	require.Equal(t, "viewer", h.Anonymous)
	require.NoError(t, h.Validate())
}

func TestHTTPValidate(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	cases := []struct {
		name string
		h    HTTP
		want []string
	}{
		{"ok with users", HTTP{Listen: "127.0.0.1:8080", Anonymous: "none", Users: []HTTPUser{
			{Name: "olga", Role: "operator", PasswordHash: string(hash)},
			{Name: "scada@plant", Role: "engineer", TokenFile: "/etc/canary/scada.token"},
			{Name: "victor", Role: "viewer", PasswordFile: "/etc/canary/victor.pass"},
		}}, nil},
		{"ipv6 loopback", HTTP{Listen: "[::1]:8080", Anonymous: "viewer"}, nil},
		{"localhost", HTTP{Listen: "localhost:8080", Anonymous: "viewer"}, nil},
		{"bad listen", HTTP{Listen: "8080", Anonymous: "viewer"}, []string{`error listen: "8080" is not host:port (e.g. 127.0.0.1:8080)`}},
		{"bad port", HTTP{Listen: "127.0.0.1:http-alt", Anonymous: "viewer"}, []string{`error listen: port "http-alt" is not a number from 0 to 65535`}},
		{"all interfaces warns", HTTP{Listen: ":8080", Anonymous: "viewer"}, []string{`warning listen: ":8080" is reachable from the network and anyone there can read values and alarms; set anonymous: none to require a login`}},
		{"all interfaces with login is quiet", HTTP{Listen: "0.0.0.0:8080", Anonymous: "none"}, nil},
		{"bad anonymous", HTTP{Listen: "127.0.0.1:8080", Anonymous: "operator"}, []string{`error anonymous: "operator" is not one of viewer, none`}},
		{"user problems", HTTP{Listen: "127.0.0.1:8080", Anonymous: "viewer", Users: []HTTPUser{
			{Name: "olga", Role: "admin", PasswordHash: "secret"},
			{Name: "olga", Role: "operator", PasswordHash: string(hash), PasswordFile: "/x"},
			{Name: "bad:name", Role: ""},
		}}, []string{
			`error users[0].password_hash: is not a bcrypt hash (want $2a$, $2b$ or $2y$...); put a plain password in a password_file instead`,
			`error users[0].role: "admin" is not one of viewer, operator, engineer`,
			`error users[1].name: "olga" is already used by users[0]`,
			`error users[1].password_file: give either password_hash or password_file, not both`,
			`error users[2]: needs a credential: password_hash, password_file or token_file`,
			`error users[2].name: "bad:name" is not a user name (letters, digits, _ . @ -, at most 64)`,
			`error users[2].role: required: viewer, operator or engineer`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, fieldErrors(c.h.Validate()))
		})
	}
}

func TestHTTPLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.5": false, "gateway.local": false} {
		require.Equal(t, want, HTTPLoopback(host), host)
	}
}

func TestIsBcryptHash(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	require.True(t, IsBcryptHash(string(hash)))
	require.False(t, IsBcryptHash("$2a$nonsense"))
	require.False(t, IsBcryptHash("plain-password"))
	require.False(t, IsBcryptHash(strings.Replace(string(hash), "$2a$", "$1$", 1)))
}

func TestPublicOrigin(t *testing.T) {
	for _, tc := range []struct{ in, origin, host string }{
		{"https://canary.example.com", "https://canary.example.com", "canary.example.com"},
		{"HTTPS://Canary.Example.com/", "https://canary.example.com", "canary.example.com"},
		{"https://canary.example.com:443", "https://canary.example.com", "canary.example.com"}, // as a browser writes it
		{"http://canary.example.com:80", "http://canary.example.com", "canary.example.com"},
		{"https://canary.example.com:8443", "https://canary.example.com:8443", "canary.example.com"},
		{"http://canary.example.com:443", "http://canary.example.com:443", "canary.example.com"},
		{"https://[2001:db8::1]:443", "https://[2001:db8::1]", "2001:db8::1"},
	} {
		origin, host, err := PublicOrigin(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.origin, origin, tc.in)
		require.Equal(t, tc.host, host, tc.in)
	}
}
