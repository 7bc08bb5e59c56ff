// Package novatest is a Keystone v3 + Nova stand-in over real HTTP for tests of Nova
// notifications. It enforces the contract Ironic's sender must meet: Keystone password and
// application-credential authentication with expiring tokens and a service catalog; Nova's
// os-server-external-events request schema at the requested microversion (events minItems 1,
// additionalProperties false, name enum per microversion, server_uuid a UUID, tag ≤ 255 and
// required for power-update), both microversion headers, a valid unexpired X-Auth-Token with
// the service or admin role, and Nova's per-event codes (200, 400, 404, 422) with 200 or 207.
//
// Import it from tests only.
package novatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// User is a Keystone user allowed to authenticate with a password.
type User struct {
	Name, Password, Domain, Project string
	Roles                           []string
}

// AppCred is an application credential (authenticated by id + secret).
type AppCred struct {
	ID, Secret string
	Roles      []string
}

// Instance is a server Nova knows.
type Instance struct {
	UUID    string
	HasHost bool // false: events for it get 422
}

// Received is an event Nova accepted (code 200).
type Received struct {
	ServerUUID string
	Tag        string
	At         time.Time
}

// Down modes.
const (
	Up         = ""
	Down503    = "503"    // Nova answers 503 Service Unavailable
	DownReset  = "reset"  // the connection is closed without an answer
	DownNoAuth = "noauth" // Keystone answers 503: nobody can authenticate
)

// Server is a running Keystone + Nova double. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base; Keystone's auth_url is URL+"/identity/v3", Nova's endpoint
	// URL+"/compute/v2.1".
	URL string

	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup

	mu        sync.Mutex
	tokenTTL  time.Duration
	users     []User
	appCreds  []AppCred
	instances map[string]Instance
	tokens    map[string]token
	down      string
	received  []Received
	requests  int
	auths     int
	rejected  int // requests refused for an expired, revoked or unknown token
	refused   []string
	region    string
	delay     time.Duration
	paths     []string // of accepted requests
}

type token struct {
	expires time.Time
	roles   []string
}

// Config configures a Server.
type Config struct {
	Users     []User
	AppCreds  []AppCred
	Instances []Instance
	TokenTTL  time.Duration // [1h]
	Region    string        // [RegionOne]
	Addr      string        // [127.0.0.1:0]
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Region == "" {
		cfg.Region = "RegionOne"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), ln: ln, tokenTTL: cfg.TokenTTL, users: cfg.Users,
		appCreds: cfg.AppCreds, instances: map[string]Instance{}, tokens: map[string]token{}, region: cfg.Region}
	for _, i := range cfg.Instances {
		s.instances[i.UUID] = i
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /identity/v3", s.identityVersion)
	mux.HandleFunc("POST /identity/v3/auth/tokens", s.authTokens)
	mux.HandleFunc("/compute/v2.1/os-server-external-events", s.externalEvents)
	mux.HandleFunc("/compute-public/v2.1/os-server-external-events", s.externalEvents)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	s.srv.Close()
	s.wg.Wait()
}

// AuthURL is Keystone's v3 endpoint.
func (s *Server) AuthURL() string { return s.URL + "/identity/v3" }

// SetDown makes the double fail (Down503, DownReset, DownNoAuth) or work again (Up).
func (s *Server) SetDown(mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = mode
}

// SetTokenTTL changes the lifetime of tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// SetDelay makes Nova wait before answering.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// AddInstance makes Nova know an instance.
func (s *Server) AddInstance(i Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[i.UUID] = i
}

// Received returns the accepted events in order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Stats: external-events requests served, successful authentications, requests refused
// for an expired, revoked or unknown token.
func (s *Server) Stats() (requests, auths, rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.auths, s.rejected
}

// Paths lists the URL paths of the external-events requests served, in order: the public
// endpoint of the catalog is /compute-public/v2.1, the internal and admin ones /compute/v2.1.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// RevokeTokens invalidates every token issued so far, as a Keystone token revocation does:
// a client holding an unexpired token gets 401 and must authenticate again.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Refused lists contract violations seen (requests answered 400/401/403/406/415 and why).
func (s *Server) Refused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refused)
}

func (s *Server) identityVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"version": map[string]any{"id": "v3.14", "status": "stable",
		"links": []any{map[string]any{"rel": "self", "href": s.AuthURL() + "/"}}}})
}

func keystoneError(w http.ResponseWriter, code int, title, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "title": title, "message": msg}})
}

func (s *Server) authTokens(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down == DownNoAuth {
		keystoneError(w, 503, "Service Unavailable", "Keystone is down")
		return
	}
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password *struct {
					User struct {
						Name     string `json:"name"`
						Password string `json:"password"`
						Domain   struct {
							Name string `json:"name"`
							ID   string `json:"id"`
						} `json:"domain"`
					} `json:"user"`
				} `json:"password"`
				AppCred *struct {
					ID     string `json:"id"`
					Secret string `json:"secret"`
				} `json:"application_credential"`
			} `json:"identity"`
			Scope json.RawMessage `json:"scope"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		keystoneError(w, 400, "Bad Request", "malformed JSON: "+err.Error())
		return
	}
	id := body.Auth.Identity
	var roles []string
	var userName, project string
	s.mu.Lock()
	switch {
	case slices.Equal(id.Methods, []string{"password"}) && id.Password != nil:
		u := id.Password.User
		for _, cand := range s.users {
			dom := u.Domain.Name
			if dom == "" {
				dom = u.Domain.ID
			}
			if cand.Name == u.Name && cand.Password == u.Password && strings.EqualFold(cand.Domain, dom) {
				roles, userName, project = cand.Roles, cand.Name, cand.Project
			}
		}
		if roles != nil && len(body.Auth.Scope) == 0 {
			roles = nil // unscoped tokens carry no roles
		}
	case slices.Equal(id.Methods, []string{"application_credential"}) && id.AppCred != nil:
		for _, cand := range s.appCreds {
			if cand.ID == id.AppCred.ID && cand.Secret == id.AppCred.Secret {
				roles, userName, project = cand.Roles, "appcred-user", "service"
			}
		}
	}
	if roles == nil {
		s.mu.Unlock()
		keystoneError(w, 401, "Unauthorized", "The request you have made requires authentication.")
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	tok := "gAAAA" + hex.EncodeToString(b)
	issued := time.Now().UTC()
	expires := issued.Add(s.tokenTTL)
	s.tokens[tok] = token{expires: expires, roles: roles}
	s.auths++
	region := s.region
	s.mu.Unlock()

	var roleList []any
	for _, r := range roles {
		roleList = append(roleList, map[string]any{"id": r + "-id", "name": r})
	}
	endpoint := func(iface, url string) map[string]any {
		return map[string]any{"id": iface + "-id", "interface": iface, "region": region, "region_id": region, "url": url}
	}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, 201, map[string]any{"token": map[string]any{
		"methods":    id.Methods,
		"issued_at":  issued.Format("2006-01-02T15:04:05.000000Z"),
		"expires_at": expires.Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": userName + "-id", "name": userName, "domain": map[string]any{"id": "default", "name": "Default"}},
		"project":    map[string]any{"id": project + "-id", "name": project, "domain": map[string]any{"id": "default", "name": "Default"}},
		"roles":      roleList,
		"catalog": []any{
			map[string]any{"type": "identity", "name": "keystone", "id": "ks", "endpoints": []any{
				endpoint("public", s.AuthURL()), endpoint("internal", s.AuthURL())}},
			map[string]any{"type": "compute", "name": "nova", "id": "nova", "endpoints": []any{
				endpoint("public", s.URL+"/compute-public/v2.1"), endpoint("internal", s.URL+"/compute/v2.1"),
				endpoint("admin", s.URL+"/compute/v2.1")}},
		},
	}})
}

// Nova's microversion range and the event names each adds.
const maxMicroversion = 96

var namesSince = []struct {
	minor int
	names []string
}{
	{0, []string{"network-changed", "network-vif-plugged", "network-vif-unplugged", "network-vif-deleted"}},
	{51, []string{"volume-extended"}},
	{76, []string{"power-update"}},
	{82, []string{"accelerator-request-bound"}},
	{93, []string{"volume-reimaged"}},
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

func novaError(w http.ResponseWriter, code int, key, msg string) {
	writeJSON(w, code, map[string]any{key: map[string]any{"code": code, "message": msg}})
}

// microversion reads both headers; they must agree (the sender sends both).
func microversion(h http.Header) (int, error) {
	newer, legacy := h.Get("OpenStack-API-Version"), h.Get("X-OpenStack-Nova-API-Version")
	if newer == "" || legacy == "" {
		return 0, fmt.Errorf("both OpenStack-API-Version and X-OpenStack-Nova-API-Version are required (got %q, %q)", newer, legacy)
	}
	svc, v, ok := strings.Cut(newer, " ")
	if !ok || svc != "compute" {
		return 0, fmt.Errorf("OpenStack-API-Version %q is not for compute", newer)
	}
	if v != legacy {
		return 0, fmt.Errorf("microversion headers disagree: %q vs %q", newer, legacy)
	}
	major, minor, ok := strings.Cut(v, ".")
	m, err := strconv.Atoi(minor)
	if !ok || major != "2" || err != nil || m < 0 {
		return 0, fmt.Errorf("invalid microversion %q", v)
	}
	return m, nil
}

func (s *Server) refuse(w http.ResponseWriter, code int, key, why string) {
	s.mu.Lock()
	s.refused = append(s.refused, fmt.Sprintf("%d %s", code, why))
	s.mu.Unlock()
	novaError(w, code, key, why)
}

func (s *Server) externalEvents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down, delay := s.down, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch down {
	case Down503:
		novaError(w, 503, "serviceUnavailable", "Nova is down")
		return
	case DownReset:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		novaError(w, 503, "serviceUnavailable", "Nova is down")
		return
	}
	if r.Method != http.MethodPost {
		s.refuse(w, 405, "badMethod", "method "+r.Method+" not allowed")
		return
	}
	// Keystone middleware: a valid token first.
	s.mu.Lock()
	tok, ok := s.tokens[r.Header.Get("X-Auth-Token")]
	if !ok || time.Now().After(tok.expires) {
		s.rejected++
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		s.refuse(w, 401, "unauthorized", "The request you have made requires authentication.")
		return
	}
	if !slices.Contains(tok.roles, "service") && !slices.Contains(tok.roles, "admin") {
		s.refuse(w, 403, "forbidden", "Policy doesn't allow os_compute_api:os-server-external-events:create to be performed.")
		return
	}
	minor, err := microversion(r.Header)
	if err != nil {
		s.refuse(w, 400, "badRequest", err.Error())
		return
	}
	if minor > maxMicroversion {
		s.refuse(w, 406, "notAcceptable", fmt.Sprintf("Version 2.%d is not supported by the API. Minimum is 2.1 and maximum is 2.%d.", minor, maxMicroversion))
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.refuse(w, 415, "mediaTypeNotSupported", "Unsupported Content-Type "+ct)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.refuse(w, 400, "badRequest", "reading the body: "+err.Error())
		return
	}
	events, err := validate(body, minor)
	if err != nil {
		s.refuse(w, 400, "badRequest", "Invalid input for field/attribute events. "+err.Error())
		return
	}
	out := make([]map[string]any, len(events))
	all := true
	s.mu.Lock()
	s.requests++
	s.paths = append(s.paths, r.URL.Path)
	for i, ev := range events {
		res := map[string]any{}
		for k, v := range ev {
			res[k] = v
		}
		name, _ := ev["name"].(string)
		uuid, _ := ev["server_uuid"].(string)
		tag, hasTag := ev["tag"].(string)
		inst, known := s.instances[uuid]
		code := 200
		switch {
		case (name == "power-update" || name == "volume-extended" || name == "accelerator-request-bound") && !hasTag:
			code = 400
		case !known:
			code = 404
		case !inst.HasHost:
			code = 422
		}
		if _, ok := res["status"]; !ok {
			res["status"] = "completed"
		}
		if code != 200 {
			res["status"] = "failed"
			all = false
		} else if name == "power-update" {
			s.received = append(s.received, Received{ServerUUID: uuid, Tag: tag, At: time.Now()})
		}
		res["code"] = code
		out[i] = res
	}
	s.mu.Unlock()
	code := 200
	if !all {
		code = 207
	}
	writeJSON(w, code, map[string]any{"events": out})
}

// validate applies Nova's JSON schema for the request at microversion 2.minor.
func validate(body []byte, minor int) ([]map[string]any, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object: %v", err)
	}
	for k := range top {
		if k != "events" {
			return nil, fmt.Errorf("Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	raw, ok := top["events"]
	if !ok {
		return nil, errors.New("'events' is a required property")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("events is not of type 'array'")
	}
	if len(list) < 1 {
		return nil, errors.New("[] is too short")
	}
	var names []string
	for _, ns := range namesSince {
		if minor >= ns.minor {
			names = append(names, ns.names...)
		}
	}
	var out []map[string]any
	for _, r := range list {
		var ev map[string]any
		if err := json.Unmarshal(r, &ev); err != nil || ev == nil {
			return nil, fmt.Errorf("%s is not of type 'object'", r)
		}
		for k := range ev {
			switch k {
			case "name", "server_uuid", "status", "tag":
			default:
				return nil, fmt.Errorf("Additional properties are not allowed ('%s' was unexpected)", k)
			}
		}
		for _, req := range []string{"server_uuid", "name"} {
			if _, ok := ev[req]; !ok {
				return nil, fmt.Errorf("'%s' is a required property", req)
			}
		}
		uuid, ok := ev["server_uuid"].(string)
		if !ok || !uuidRE.MatchString(uuid) {
			return nil, fmt.Errorf("%v is not a 'uuid'", ev["server_uuid"])
		}
		name, ok := ev["name"].(string)
		if !ok || !slices.Contains(names, name) {
			return nil, fmt.Errorf("%v is not one of %v", ev["name"], names)
		}
		if st, has := ev["status"]; has {
			if s, ok := st.(string); !ok || (s != "failed" && s != "completed" && s != "in-progress") {
				return nil, fmt.Errorf("%v is not one of ['failed', 'completed', 'in-progress']", st)
			}
		}
		if tg, has := ev["tag"]; has {
			s, ok := tg.(string)
			if !ok {
				return nil, fmt.Errorf("%v is not of type 'string'", tg)
			}
			if len([]rune(s)) > 255 {
				return nil, fmt.Errorf("'%s' is too long", s)
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// CloudsYAML returns a clouds.yaml with cloud "nova-test" (password) and "nova-appcred"
// (application credential) for this server.
func (s *Server) CloudsYAML(user User, cred AppCred) string {
	return fmt.Sprintf(`clouds:
  nova-test:
    auth_type: password
    auth:
      auth_url: %[1]s
      username: %[2]s
      password: %[3]s
      user_domain_name: %[4]s
      project_name: %[5]s
      project_domain_name: %[4]s
    region_name: %[8]s
    interface: internal
  nova-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: %[1]s
      application_credential_id: %[6]s
      application_credential_secret: %[7]s
    region_name: %[8]s
`, s.AuthURL(), user.Name, user.Password, user.Domain, user.Project, cred.ID, cred.Secret, s.region)
}

// WaitFor polls until cond holds or ctx ends.
func WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
