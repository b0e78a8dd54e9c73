package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/canary-gw/canary/configs"
)

// User is one login with resolved credentials.
type User struct {
	Name string
	// Role is configs.RoleViewer, RoleOperator or RoleEngineer.
	Role string
	// PasswordHash is a bcrypt hash; empty if the user has only a token.
	PasswordHash []byte
	// Token is a static bearer token; empty if none.
	Token string
}

// LoadUsers resolves the users of an http config: it reads password and
// token files and hashes plain passwords. cfg must be validated.
func LoadUsers(cfg configs.HTTP) ([]User, error) {
	users := make([]User, 0, len(cfg.Users))
	tokenOf := map[string]int{} // token → the first user holding it
	for i, u := range cfg.Users {
		out := User{Name: u.Name, Role: u.Role}
		switch {
		case u.PasswordHash != "":
			out.PasswordHash = []byte(u.PasswordHash)
		case u.PasswordFile != "":
			secret, err := readSecret(u.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("http.users[%d] %s: password_file: %w", i, u.Name, err)
			}
			if configs.IsBcryptHash(secret) {
				out.PasswordHash = []byte(secret)
			} else if out.PasswordHash, err = HashPassword(secret); err != nil {
				return nil, fmt.Errorf("http.users[%d] %s: password_file: %w", i, u.Name, err)
			}
		}
		if u.TokenFile != "" {
			tok, err := readSecret(u.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("http.users[%d] %s: token_file: %w", i, u.Name, err)
			}
			if len(tok) < 16 {
				return nil, fmt.Errorf("http.users[%d] %s: token_file %s: token shorter than 16 characters", i, u.Name, u.TokenFile)
			}
			if j, dup := tokenOf[tok]; dup {
				// One token would act as whichever user came last: the
				// wrong role, and the wrong name in the audit trail.
				return nil, fmt.Errorf("http.users[%d] %s: token_file %s holds the same token as http.users[%d] %s (each user needs a token of their own)",
					i, u.Name, u.TokenFile, j, cfg.Users[j].Name)
			}
			tokenOf[tok] = i
			out.Token = tok
		}
		users = append(users, out)
	}
	return users, nil
}

// HashPassword returns the bcrypt hash of a password, for the demo's
// generated operator and for tests.
func HashPassword(password string) ([]byte, error) {
	if password == "" {
		return nil, fmt.Errorf("empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	s := strings.TrimSpace(line)
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// principal is who made a request.
type principal struct {
	User string
	Role string
}

func roleRank(role string) int {
	switch role {
	case configs.RoleViewer:
		return 1
	case configs.RoleOperator:
		return 2
	case configs.RoleEngineer:
		return 3
	}
	return 0
}

type session struct {
	p       principal
	expires time.Time
}

// authenticator checks basic credentials, static tokens and session tokens.
// Tokens are looked up by their SHA-256 so that a lookup leaks no timing
// about the token itself.
type authenticator struct {
	users      map[string]User
	tokens     map[[32]byte]principal
	dummy      []byte
	sessionTTL time.Duration

	mu       sync.Mutex
	sessions map[[32]byte]session

	slots    chan struct{} // see bcryptSlots
	slotWait time.Duration // see bcryptWait
}

func newAuthenticator(users []User, ttl time.Duration) (*authenticator, error) {
	a := &authenticator{
		users:      map[string]User{},
		tokens:     map[[32]byte]principal{},
		sessions:   map[[32]byte]session{},
		sessionTTL: ttl,
		slots:      make(chan struct{}, bcryptSlots),
		slotWait:   bcryptWait,
	}
	cost := bcrypt.DefaultCost
	for _, u := range users {
		if roleRank(u.Role) == 0 {
			return nil, fmt.Errorf("user %q: unknown role %q", u.Name, u.Role)
		}
		if _, dup := a.users[u.Name]; dup {
			return nil, fmt.Errorf("user %q: defined twice", u.Name)
		}
		a.users[u.Name] = u
		if u.Token != "" {
			h := sha256.Sum256([]byte(u.Token))
			if p, dup := a.tokens[h]; dup {
				return nil, fmt.Errorf("user %q: same token as user %q", u.Name, p.User)
			}
			a.tokens[h] = principal{User: u.Name, Role: u.Role}
		}
		if c, err := bcrypt.Cost(u.PasswordHash); err == nil && c > cost {
			cost = c
		}
	}
	// Unknown users are checked against this hash so that a wrong name
	// takes as long as a wrong password: at the users' cost (the highest,
	// when they differ), not bcrypt's default, or a site whose hashes
	// were made at cost 12 would tell which names exist.
	dummy, err := bcrypt.GenerateFromPassword([]byte("canary-dummy"), cost)
	if err != nil {
		return nil, fmt.Errorf("hash dummy password: %w", err)
	}
	a.dummy = dummy
	return a, nil
}

// authResult distinguishes "no credentials" from "wrong credentials".
type authResult int

const (
	authNone authResult = iota
	authOK
	authBad
	// authBusy: too many password checks at once; try again shortly.
	authBusy
)

// bcryptSlots bounds concurrent password checks. A bcrypt comparison costs
// tens of milliseconds of CPU; unbounded, a flood of Basic requests (or a
// password-guessing run) would starve the alarm engine on a 2-core edge box.
const bcryptSlots = 1

// bcryptWait is how long a request waits for a slot before it is told to
// come back (429).
const bcryptWait = 2 * time.Second

func (a *authenticator) authenticate(r *http.Request, now time.Time) (principal, authResult, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, authNone, ""
	}
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return principal{}, authBad, "basic"
		}
		name, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return principal{}, authBad, "basic"
		}
		u, known := a.users[name]
		hash := u.PasswordHash
		if !known || len(hash) == 0 {
			hash = a.dummy
		}
		wait := time.NewTimer(a.slotWait)
		defer wait.Stop()
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
		case <-wait.C:
			return principal{}, authBusy, "basic"
		case <-r.Context().Done():
			return principal{}, authBusy, "basic"
		}
		if err := bcrypt.CompareHashAndPassword(hash, []byte(pass)); err != nil || !known || len(u.PasswordHash) == 0 {
			return principal{}, authBad, "basic"
		}
		return principal{User: u.Name, Role: u.Role}, authOK, "basic"
	case "bearer":
		sum := sha256.Sum256([]byte(cred))
		if p, ok := a.tokens[sum]; ok {
			return p, authOK, "bearer"
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if s, ok := a.sessions[sum]; ok {
			if now.Before(s.expires) {
				return s.p, authOK, "bearer"
			}
			delete(a.sessions, sum)
		}
		return principal{}, authBad, "bearer"
	}
	return principal{}, authBad, ""
}

// newSession issues a random session token for p.
func (a *authenticator) newSession(p principal, now time.Time) (string, time.Time, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("session token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	exp := now.Add(a.sessionTTL)
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.sessions { // expired sessions go on the next login
		if !now.Before(s.expires) {
			delete(a.sessions, k)
		}
	}
	a.sessions[sha256.Sum256([]byte(tok))] = session{p: p, expires: exp}
	return tok, exp, nil
}

// endSession forgets a session token (logout); static tokens stay valid.
func (a *authenticator) endSession(r *http.Request) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sessions, sum)
}

// sameOrigin reports whether an Origin header (if any) names this host or
// one of http.public_origins (a reverse proxy's), a second line of defence
// against cross-site requests besides the Authorization header and the
// JSON content type.
func (s *Server) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	for _, scheme := range []string{"http://", "https://"} {
		if o == scheme+r.Host {
			return true
		}
	}
	_, ok := s.publicOrigins[strings.ToLower(o)]
	return ok
}
