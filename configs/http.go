package configs

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/canary-gw/canary/internal/configerr"
)

// DefaultHTTPListen is where the API and UI listen unless the site config
// says otherwise: loopback only, so a fresh install is not on the network.
const DefaultHTTPListen = "127.0.0.1:8080"

// Roles of HTTP users, weakest first. A role includes the rights of the
// roles before it.
const (
	// RoleViewer may read readings, alarms, events and trends.
	RoleViewer = "viewer"
	// RoleOperator may also acknowledge, shelve, unshelve and reset alarms.
	RoleOperator = "operator"
	// RoleEngineer has every operator right; the gateway may grant it more
	// (out of service, limit changes) as those are added.
	RoleEngineer = "engineer"
	// AnonymousNone makes every API call need credentials.
	AnonymousNone = "none"
)

// HTTP is the gateway's API and control-room UI listener (`http:`).
type HTTP struct {
	// Listen is host:port. Default 127.0.0.1:8080. A non-loopback address
	// (0.0.0.0:8080, :8080, a LAN address) is used only when written here.
	Listen string `yaml:"listen"`
	// Anonymous is what a request without credentials may do: "viewer"
	// (default: read-only views and the live stream) or "none" (every API
	// call and the live stream need a login). State changes always need a
	// login with role operator or engineer.
	Anonymous string `yaml:"anonymous"`
	// Users may log in with HTTP basic auth (or a session token obtained
	// with it) or with a static bearer token.
	Users []HTTPUser `yaml:"users"`
	// PublicOrigins are the origins (scheme://host[:port]) a reverse proxy
	// serves this API and UI under, e.g. https://canary.example.com: a
	// browser's Origin (and, on a loopback listener, the Host a proxy
	// passes through) may name them as well as the listener itself.
	PublicOrigins []string `yaml:"public_origins"`
}

// PublicOrigin parses one of http.public_origins: an http or https URL
// with a host and nothing after it but an optional "/". It returns the
// origin as a browser writes it in Origin (lower case, no trailing slash,
// no default port: https://x:443 is https://x) and its host name (no port:
// a proxy passing Host through, nginx's $host, leaves the port out).
func PublicOrigin(s string) (origin, host string, err error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", "", fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("%q: want http:// or https://", s)
	case u.Host == "" || u.Hostname() == "":
		return "", "", fmt.Errorf("%q has no host", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("%q: an origin is scheme://host[:port] and nothing more", s)
	}
	hostport := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		hostport = strings.ToLower(u.Hostname())
		if strings.Contains(hostport, ":") {
			hostport = "[" + hostport + "]" // IPv6
		}
	}
	return u.Scheme + "://" + hostport, strings.ToLower(u.Hostname()), nil
}

// HTTPUser is one person or machine that may use the API.
type HTTPUser struct {
	// Name is the login name recorded in the audit trail with every action.
	Name string `yaml:"name"`
	// Role is viewer, operator or engineer.
	Role string `yaml:"role"`
	// PasswordHash is a bcrypt hash ($2a$/$2b$/$2y$), e.g. from
	// `htpasswd -nbBC 10 "" secret | tr -d ':\n'`. A hash is not a secret,
	// so it may be written inline.
	PasswordHash string `yaml:"password_hash"`
	// PasswordFile names a file holding the password or its bcrypt hash
	// (first line; surrounding whitespace ignored).
	PasswordFile string `yaml:"password_file"`
	// TokenFile names a file holding a static bearer token (first line, at
	// least 16 characters) for machine clients.
	TokenFile string `yaml:"token_file"`
}

// userNameRE is ^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$ with the length
// checked apart (validUserName): the counted repetition compiled to 64
// copies of the class, 60 KB at every start of every command and 26 KB
// kept, where this is 3 KB.
var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]*$`)

// validUserName reports whether s is a user name of at most 64 bytes.
func validUserName(s string) bool { return len(s) <= 64 && userNameRE.MatchString(s) }

// SetDefaults fills in the listen address and the anonymous role.
func (h *HTTP) SetDefaults() {
	if h.Listen == "" {
		h.Listen = DefaultHTTPListen
	}
	if h.Anonymous == "" {
		h.Anonymous = RoleViewer
	}
}

// Validate checks the section; paths are relative to `http`.
func (h *HTTP) Validate() error {
	var l configerr.List
	if host, ok := checkListen(&l, "listen", h.Listen, DefaultHTTPListen); ok {
		if !HTTPLoopback(host) && h.Anonymous != AnonymousNone {
			l.Warn("listen", "%q is reachable from the network and anyone there can read values and alarms; set anonymous: none to require a login", h.Listen)
		}
	}
	switch h.Anonymous {
	case RoleViewer, AnonymousNone:
	default:
		l.Add("anonymous", "%q is not one of viewer, none", h.Anonymous)
	}
	for i, o := range h.PublicOrigins {
		if _, _, err := PublicOrigin(o); err != nil {
			l.Add("public_origins["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
	seen := map[string]int{}
	for i, u := range h.Users {
		p := "users[" + strconv.Itoa(i) + "]"
		if !validUserName(u.Name) {
			l.Add(p+".name", "%q is not a user name (letters, digits, _ . @ -, at most 64)", u.Name)
		} else if j, dup := seen[u.Name]; dup {
			l.Add(p+".name", "%q is already used by users[%d]", u.Name, j)
		} else {
			seen[u.Name] = i
		}
		switch u.Role {
		case RoleViewer, RoleOperator, RoleEngineer:
		case "":
			l.Add(p+".role", "required: viewer, operator or engineer")
		default:
			l.Add(p+".role", "%q is not one of viewer, operator, engineer", u.Role)
		}
		if u.PasswordHash != "" && u.PasswordFile != "" {
			l.Add(p+".password_file", "give either password_hash or password_file, not both")
		}
		if u.PasswordHash == "" && u.PasswordFile == "" && u.TokenFile == "" {
			l.Add(p, "needs a credential: password_hash, password_file or token_file")
		}
		if u.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || !IsBcryptHash(u.PasswordHash) {
				l.Add(p+".password_hash", "is not a bcrypt hash (want $2a$, $2b$ or $2y$...); put a plain password in a password_file instead")
			}
		}
	}
	return l.Err()
}

// checkListen checks a host:port listen address at path (example shows the
// form in the message) and returns its host, ok when it splits into one.
func checkListen(l *configerr.List, path, addr, example string) (host string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		l.Add(path, "%q is not host:port (e.g. %s)", addr, example)
		return "", false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		l.Add(path, "port %q is not a number from 0 to 65535", port)
	}
	return host, true
}

// IsBcryptHash reports whether s looks like a bcrypt hash rather than a
// plain password.
func IsBcryptHash(s string) bool {
	if !(strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")) {
		return false
	}
	_, err := bcrypt.Cost([]byte(s))
	return err == nil
}

// HTTPLoopback reports whether a listen host only accepts local
// connections. An empty host means every interface.
func HTTPLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
