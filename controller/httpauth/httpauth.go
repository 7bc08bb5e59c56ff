// Package httpauth authenticates requests to Ferrum's REST API the way standalone Ironic does
// (its [DEFAULT]auth_strategy): "noauth", allowed here only when the API listens on a loopback
// address, or "http_basic", HTTP Basic against an Apache htpasswd file of bcrypt hashes.
//
// The version documents (GET / and GET /v1, /v1/) stay public, as in Ironic, so clients can
// discover the API before authenticating. Every other request needs valid credentials; a
// failure is a 401 that says nothing about the resource asked for. Ironic also leaves its
// ramdisk endpoints (/v1/lookup, /v1/heartbeat/{id}, /v1/continue_inspection) public; Ferrum's
// agent talks over its own tunnel, so they are not public here.
//
// The controller's wiring (cmd/ferrum-controller) imports this package and wraps the API
// handler with Middleware; API handlers do not depend on it.
package httpauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// Auth modes, spelled as Ironic's auth_strategy values.
const (
	ModeNoAuth    = "noauth"
	ModeHTTPBasic = "http_basic"
)

// Realm is the HTTP Basic realm Ironic announces in WWW-Authenticate.
const Realm = "Baremetal API"

// unauthorizedMessage is the faultstring of every 401: Ironic's text for wrong credentials
// (ironic/common/auth_basic.py). Ironic says "Authorization required" when the header is
// missing; Ferrum gives one answer for missing and wrong credentials alike.
const unauthorizedMessage = "Incorrect username or password"

// Config configures an Authenticator. Zero durations take the defaults in brackets.
type Config struct {
	Mode         string // ModeNoAuth or ModeHTTPBasic; required
	HtpasswdFile string // ModeHTTPBasic: "user:bcrypt-hash" lines
	ListenAddr   string // the API listener's host:port; ModeNoAuth requires a loopback host
	Log          zerolog.Logger

	CacheTTL       time.Duration    // [5m] how long a verified password skips bcrypt
	ReloadInterval time.Duration    // [2s] least time between two checks of HtpasswdFile's mtime
	Now            func() time.Time // [time.Now]
}

// Authenticator checks API requests. It is safe for concurrent use.
type Authenticator struct {
	mode        string
	file        string
	log         zerolog.Logger
	ttl         time.Duration
	reloadEvery time.Duration
	now         func() time.Time

	users     atomic.Pointer[userSet]
	lastCheck atomic.Int64 // Unix nanoseconds of the last mtime check

	reloadMu sync.Mutex // serialises reloads and guards the fields below
	seenMod  time.Time  // version of the file last looked at, loaded or not
	seenSize int64
	statErr  bool // the last stat failed (logged once)

	// The cache remembers, per user, a keyed digest of the last password that bcrypt
	// verified. It holds at most one entry per user of the current file (plus entries
	// of in-flight requests from before a reload, dropped at the next reload).
	cacheKey [32]byte
	cacheMu  sync.Mutex
	cache    map[string]cacheEntry
}

// userSet is one successfully parsed version of the htpasswd file.
type userSet struct {
	hashes map[string][]byte
	// dummy is a bcrypt hash of a random password at the file's highest cost; unknown users
	// are checked against it so that they take as long to reject as wrong passwords.
	dummy     []byte
	dummyCost int
}

type cacheEntry struct {
	digest  [sha256.Size]byte
	expires time.Time
	users   *userSet // the file version the password was verified against
}

// New validates cfg and, for ModeHTTPBasic, loads the htpasswd file.
func New(cfg Config) (*Authenticator, error) {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{
		mode:        cfg.Mode,
		file:        cfg.HtpasswdFile,
		log:         cfg.Log.With().Str("component", "httpauth").Logger(),
		ttl:         cfg.CacheTTL,
		reloadEvery: cfg.ReloadInterval,
		now:         cfg.Now,
		cache:       map[string]cacheEntry{},
	}
	switch cfg.Mode {
	case ModeNoAuth:
		if !isLoopbackListenAddr(cfg.ListenAddr) {
			return nil, fmt.Errorf("httpauth: auth mode %q is only allowed on a loopback listen address (127.0.0.0/8, ::1 or localhost), not %q: set the auth mode to %q with an htpasswd file of bcrypt hashes",
				ModeNoAuth, cfg.ListenAddr, ModeHTTPBasic)
		}
		a.log.Info().Str("listen_addr", cfg.ListenAddr).Msg("API authentication disabled (noauth on loopback)")
		return a, nil
	case ModeHTTPBasic:
	case "":
		return nil, fmt.Errorf("httpauth: auth mode not set (want %q or %q)", ModeHTTPBasic, ModeNoAuth)
	default:
		return nil, fmt.Errorf("httpauth: unknown auth mode %q (want %q or %q)", cfg.Mode, ModeHTTPBasic, ModeNoAuth)
	}

	if cfg.HtpasswdFile == "" {
		return nil, fmt.Errorf("httpauth: auth mode %q needs an htpasswd file", ModeHTTPBasic)
	}
	if _, err := rand.Read(a.cacheKey[:]); err != nil {
		return nil, fmt.Errorf("httpauth: cache key: %w", err)
	}
	fi, data, err := readFile(cfg.HtpasswdFile)
	if err != nil {
		return nil, fmt.Errorf("httpauth: %w", err)
	}
	set, err := newUserSet(cfg.HtpasswdFile, data, nil)
	if err != nil {
		return nil, fmt.Errorf("httpauth: %w", err)
	}
	if len(set.hashes) == 0 {
		return nil, fmt.Errorf("httpauth: htpasswd %s has no users", cfg.HtpasswdFile)
	}
	a.users.Store(set)
	a.seenMod, a.seenSize = fi.ModTime(), fi.Size()
	a.lastCheck.Store(a.now().UnixNano())
	a.log.Info().Str("file", cfg.HtpasswdFile).Int("users", len(set.hashes)).Msg("API authentication: http_basic")
	return a, nil
}

// Middleware returns next guarded by the configured mode. In noauth mode it returns next
// itself. Requests are passed on unchanged (same *http.Request), so r.Pattern set by an inner
// ServeMux stays visible to outer middleware.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	if a.mode == ModeNoAuth {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPublic(r) {
			next.ServeHTTP(w, r)
			return
		}
		if !a.check(r) {
			writeUnauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isPublic reports whether r asks for a version document, which Ironic serves without
// authentication. HEAD is GET without a body.
func isPublic(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case "/", "/v1", "/v1/":
		return true
	}
	return false
}

// check reports whether r carries valid credentials.
func (a *Authenticator) check(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		if r.Header.Get("Authorization") == "" {
			a.log.Debug().Str("remote_addr", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
				Msg("API request without credentials")
			return false
		}
		// A malformed header or another scheme: Ironic answers 400 here; a 401 tells the
		// client to retry with Basic and echoes nothing it sent.
		a.log.Warn().Str("remote_addr", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
			Msg("API authentication failed: Authorization header is not valid HTTP Basic")
		return false
	}
	a.maybeReload()
	set := a.users.Load()
	digest := a.digest(user, pass)
	if a.cached(set, user, digest) {
		return true
	}
	reason := ""
	if hash, known := set.hashes[user]; !known {
		reason = "unknown user"
		if set.dummy != nil {
			_ = bcrypt.CompareHashAndPassword(set.dummy, []byte(pass))
		}
	} else if err := bcrypt.CompareHashAndPassword(hash, []byte(pass)); err != nil {
		reason = "wrong password"
	}
	if reason != "" {
		a.log.Warn().Str("user", user).Str("remote_addr", r.RemoteAddr).Str("method", r.Method).
			Str("path", r.URL.Path).Str("reason", reason).Msg("API authentication failed")
		return false
	}
	a.remember(set, user, digest)
	return true
}

// digest is what the cache keeps of a password: HMAC-SHA256 under a per-process random key,
// so that a cache entry on its own is not a fast-to-test password hash.
func (a *Authenticator) digest(user, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.cacheKey[:])
	m.Write([]byte(user + ":" + pass))
	var d [sha256.Size]byte
	m.Sum(d[:0])
	return d
}

func (a *Authenticator) cached(set *userSet, user string, digest [sha256.Size]byte) bool {
	a.cacheMu.Lock()
	e, ok := a.cache[user]
	a.cacheMu.Unlock()
	return ok && e.users == set && a.now().Before(e.expires) &&
		subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1
}

func (a *Authenticator) remember(set *userSet, user string, digest [sha256.Size]byte) {
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	if a.users.Load() != set {
		return // the file was reloaded while bcrypt ran
	}
	a.cache[user] = cacheEntry{digest: digest, expires: a.now().Add(a.ttl), users: set}
}

// maybeReload reloads the htpasswd file if its mtime or size changed, checking at most once
// per reload interval. Requests never wait for another request's check.
func (a *Authenticator) maybeReload() {
	now := a.now().UnixNano()
	last := a.lastCheck.Load()
	if now-last < int64(a.reloadEvery) {
		return
	}
	if !a.lastCheck.CompareAndSwap(last, now) {
		return
	}
	a.reload()
}

// reload loads a changed htpasswd file. A file that cannot be read or parsed is logged and
// the users loaded before stay in force.
func (a *Authenticator) reload() {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	fi, err := os.Stat(a.file)
	if err != nil {
		if !a.statErr {
			a.log.Error().Err(err).Msg("htpasswd file unavailable; keeping the users loaded before")
		}
		a.statErr = true
		return
	}
	a.statErr = false
	if fi.ModTime().Equal(a.seenMod) && fi.Size() == a.seenSize {
		return
	}
	fi, data, err := readFile(a.file)
	if err != nil {
		a.log.Error().Err(err).Msg("htpasswd reload failed; keeping the users loaded before")
		return
	}
	if int64(len(data)) != fi.Size() {
		return // being written; look again at the next check
	}
	a.seenMod, a.seenSize = fi.ModTime(), fi.Size()
	old := a.users.Load()
	set, err := newUserSet(a.file, data, old)
	if err != nil {
		a.log.Error().Err(err).Msg("htpasswd reload failed; keeping the users loaded before")
		return
	}
	a.cacheMu.Lock()
	a.users.Store(set)
	clear(a.cache)
	a.cacheMu.Unlock()
	ev := a.log.Info()
	if len(set.hashes) == 0 {
		ev = a.log.Warn()
	}
	ev.Str("file", a.file).Int("users", len(set.hashes)).Msg("htpasswd reloaded")
}

// readFile reads name and returns the stat of the open file, so both describe one version.
func readFile(name string) (os.FileInfo, []byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("read htpasswd: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read htpasswd: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("read htpasswd %s: not a regular file", name)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read htpasswd %s: %w", name, err)
	}
	return fi, data, nil
}

// newUserSet parses data and prepares the dummy hash, reusing prev's when the cost matches.
func newUserSet(name string, data []byte, prev *userSet) (*userSet, error) {
	hashes, err := parseHtpasswd(name, data)
	if err != nil {
		return nil, err
	}
	set := &userSet{hashes: hashes}
	for _, h := range hashes {
		if c, err := bcrypt.Cost(h); err == nil && c > set.dummyCost {
			set.dummyCost = c
		}
	}
	if set.dummyCost == 0 {
		return set, nil
	}
	if prev != nil && prev.dummyCost == set.dummyCost {
		set.dummy = prev.dummy
		return set, nil
	}
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return nil, fmt.Errorf("dummy password: %w", err)
	}
	set.dummy, err = bcrypt.GenerateFromPassword(pw, set.dummyCost)
	if err != nil {
		return nil, fmt.Errorf("dummy hash: %w", err)
	}
	return set, nil
}

// isLoopbackListenAddr reports whether a listener on addr ("host:port" or a bare host) is
// reachable only from this machine: host "localhost" or an IP in 127.0.0.0/8 or ::1. An
// empty host, 0.0.0.0 and :: listen on every interface; other names are not resolved.
func isLoopbackListenAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// unauthorizedBody is Ironic's error body (§3.3 of the compatibility notes): a JSON object
// whose error_message is itself JSON, spaced as Python's json.dumps spaces it.
var unauthorizedBody = []byte(`{"error_message": ` +
	jsonString(`{"faultcode": "Client", "faultstring": `+jsonString(unauthorizedMessage)+`, "debuginfo": null}`) + `}`)

func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

func writeUnauthorized(w http.ResponseWriter) {
	h := w.Header()
	h.Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(unauthorizedBody)
}
